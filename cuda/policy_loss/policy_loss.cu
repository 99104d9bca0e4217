// The policy loss on the GPU: the CPU twin's chunk loop (policy_loss_cpu.cc) with the GEMMs on tensor cores
// (matmul_cuda) and the row pass as a kernel, one block per token:
//   pass 1 block max; pass 2 block sums of e^{x - max} (at the max / the rest) and of e (x - max), which give lse and
//   the entropy as in the CPU twin; pass 3 d_raw_logits in place (f32 inputs) or as an f16/bf16 copy (16-bit inputs)
// A target outside [0, V) raises a device flag that is read back (one sync) before the call returns.
// loss and nll are summed in token order by one thread, in f64, as on the CPU.
#include <algorithm>
#include <memory>
#include <string>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/matmul/matmul.h"
#include "cuda/policy_loss/policy_loss.h"

namespace qwenlong {

namespace {

constexpr int kThreads = 512;

__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : -INFINITY;
  return warp_max(v);
}

template <typename Half>
__global__ void rows_kernel(PolicyLossParams p, int64_t t0, float* __restrict__ logits, Half* __restrict__ logits_half, int* __restrict__ bad) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x, t = t0 + r, V = p.vocab;
  float* row = logits + r * V;
  const int32_t target = p.targets[t];
  if (target < 0 || target >= V) {
    if (threadIdx.x == 0) atomicExch(bad, 1);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {  // the row adds nothing to the gradients (the op throws)
      row[v] = 0.f;
      if (logits_half) logits_half[r * V + v] = from_f32<Half>(0.f);
    }
    return;
  }
  // 1. max
  float m = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, row[v]);
  m = block_max(m, shared);
  // 2. e = e^{x - max}: N words at the max (e = 1), R the sum of the others' e, Y the sum of e (x - max); as on the
  // CPU, log S = log N + log1p(R / N) and the entropy log S - Y / S (no cancelling terms on a peaked row)
  float n = 0.f, rest = 0.f, y = 0.f;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float a = row[v] - m, e = __expf(a);
    if (a == 0.f) n += 1.f;
    else rest += e;
    y = fmaf(e, a, y);
  }
  n = block_sum(n, shared);
  rest = block_sum(rest, shared);
  y = block_sum(y, shared);
  const float s = n + rest, log_s = logf(n) + log1pf(rest / n);
  const float logp = (row[target] - m) - log_s;  // every thread reads it before any thread rewrites the row
  const TokenLoss tl = token_loss(logp, p.old_logp, t, p.advantages[t], p.clip_low, p.clip_high, p.dual_clip);
  const float g = p.coef[t] * tl.dlogp / p.temperature;
  const float c = -g / s;
  __syncthreads();
  // 3. d_raw_logits = g (onehot - p): in place in f32, or only as the 16-bit copy the gradient products read (for
  // 16-bit inputs the f32 row is not read again, and skipping it saves a third of the pass's traffic)
  if (logits_half) {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) logits_half[r * V + v] = from_f32<Half>((v == target ? g : 0.f) + c * __expf(row[v] - m));
  } else {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) row[v] = (v == target ? g : 0.f) + c * __expf(row[v] - m);
  }
  const float ent = log_s - y / s;
  if (threadIdx.x == 0) {
    p.logp[t] = logp;
    p.entropy[t] = ent;
  }
}

__global__ void totals_kernel(PolicyLossParams p) {
  double loss = 0.0, nll = 0.0, counted = 0.0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const TokenLoss tl = token_loss(p.logp[t], p.old_logp, t, p.advantages[t], p.clip_low, p.clip_high, p.dual_clip);
    loss += static_cast<double>(p.coef[t]) * tl.loss;
    if (p.mask[t] != 0.f) {
      nll -= p.logp[t];
      counted += 1.0;
    }
  }
  *p.loss = static_cast<float>(loss);
  *p.nll = counted > 0 ? static_cast<float>(nll / counted) : 0.f;
}

}  // namespace

void policy_loss_cuda(const PolicyLossParams& p) {
  NvtxRange range("qwenlong.policyLoss");
  const int64_t T = p.tokens, H = p.hidden_size, V = p.vocab;
  const bool half = p.dtype != DType::f32;
  const bool grads = p.d_hidden != nullptr || p.d_weight != nullptr;
  const int64_t row_bytes = V * static_cast<int64_t>(sizeof(float) + (half && grads ? 2 : 0));
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(T, p.workspace_bytes / row_bytes));
  auto workspace = Storage::allocate(Device::cuda, static_cast<size_t>(chunk * row_bytes) + sizeof(int));
  float* logits = static_cast<float*>(workspace->data());
  void* logits_half = half && grads ? static_cast<void*>(logits + chunk * V) : nullptr;
  int* bad = reinterpret_cast<int*>(static_cast<char*>(workspace->data()) + chunk * row_bytes);
  check_cuda(cudaMemsetAsync(bad, 0, sizeof(int), compute_stream()), "ops.policyLoss");
  const size_t in_size = dtype_size(p.dtype);
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t rows = std::min(chunk, T - t0);
    const void* hidden_chunk = static_cast<const char*>(p.hidden) + t0 * H * in_size;
    MatmulParams mm;  // 1. logits = hidden W^T / temperature
    mm.a = hidden_chunk, mm.b = p.weight, mm.c = logits;
    mm.ab_dtype = p.dtype, mm.c_dtype = DType::f32;
    mm.m = rows, mm.n = V, mm.k = H, mm.lda = H, mm.ldb = H, mm.ldc = V;
    mm.trans_b = true, mm.alpha = 1.f / p.temperature, mm.beta = 0.f;
    matmul_cuda(mm);
    // 2. rows
    if (p.dtype == DType::bf16)
      rows_kernel<__nv_bfloat16><<<static_cast<unsigned>(rows), kThreads, 0, compute_stream()>>>(p, t0, logits, static_cast<__nv_bfloat16*>(logits_half), bad);
    else if (p.dtype == DType::f16)
      rows_kernel<__half><<<static_cast<unsigned>(rows), kThreads, 0, compute_stream()>>>(p, t0, logits, static_cast<__half*>(logits_half), bad);
    else
      rows_kernel<float><<<static_cast<unsigned>(rows), kThreads, 0, compute_stream()>>>(p, t0, logits, nullptr, bad);
    check_launch("ops.policyLoss");
    if (!grads) continue;
    const void* dlogits = logits_half ? logits_half : static_cast<const void*>(logits);
    if (p.d_hidden) {  // 3. d_hidden = d_raw_logits W
      MatmulParams dh;
      dh.a = dlogits, dh.b = p.weight, dh.c = p.d_hidden + t0 * H;
      dh.ab_dtype = p.dtype, dh.c_dtype = DType::f32;
      dh.m = rows, dh.n = H, dh.k = V, dh.lda = V, dh.ldb = H, dh.ldc = H;
      matmul_cuda(dh);
    }
    if (p.d_weight) {  // 4. d_weight (+)= d_raw_logits^T hidden
      MatmulParams dw;
      dw.a = dlogits, dw.b = hidden_chunk, dw.c = p.d_weight;
      dw.ab_dtype = p.dtype, dw.c_dtype = DType::f32;
      dw.m = V, dw.n = H, dw.k = rows, dw.lda = V, dw.ldb = H, dw.ldc = H;
      dw.trans_a = true, dw.beta = t0 == 0 ? 0.f : 1.f;
      matmul_cuda(dw);
    }
  }
  if (p.d_weight && T == 0) check_cuda(cudaMemsetAsync(p.d_weight, 0, static_cast<size_t>(V * H) * sizeof(float), compute_stream()), "ops.policyLoss");
  totals_kernel<<<1, 1, 0, compute_stream()>>>(p);
  check_launch("ops.policyLoss");
  int flag = 0;
  check_cuda(cudaMemcpyAsync(&flag, bad, sizeof(int), cudaMemcpyDeviceToHost, compute_stream()), "ops.policyLoss");
  check_cuda(cudaStreamSynchronize(compute_stream()), "ops.policyLoss");
  if (flag) throw_range("ops.policyLoss: a target in 'targets' is outside [0, " + std::to_string(V) + ")");
}

}  // namespace qwenlong
