// The policy-loss CPU twin. For each chunk of tokens that fits the workspace:
//   1. logits = hidden_chunk W^T / temperature            (matmul NT, f32 into the workspace)
//   2. per row (threads split the rows): max, lse, logp, entropy over the buffered row; the token's loss term;
//      the row becomes d_raw_logits in place
//   3. d_hidden_chunk = d_raw_logits W                     (matmul NN)
//   4. d_weight (+)= d_raw_logits^T hidden_chunk           (matmul TN, accumulating after the first chunk)
// For f16/bf16 inputs the GEMMs of steps 3-4 read a copy of d_raw_logits in the inputs' dtype (as mixed-precision
// training does); logits, softmax and every accumulation stay f32. loss and nll are summed in token order, in f64.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/common/device.h"
#include "cuda/common/isa_variants.h"
#include "cuda/common/thread_pool.h"
#include "cuda/matmul/matmul.h"
#include "cuda/policy_loss/policy_loss.h"
#define QWENLONG_ISA_NS policy_loss_scalar
#include "cuda/policy_loss/policy_loss_kernels.inc"

namespace qwenlong {

void policy_loss_cpu(const PolicyLossParams& p) {
  const int64_t T = p.tokens, H = p.hidden_size, V = p.vocab;
  const bool half = p.dtype != DType::f32;
  const bool grads = p.d_hidden != nullptr || p.d_weight != nullptr;
  const int64_t row_bytes = V * static_cast<int64_t>(sizeof(float) + (half && grads ? dtype_size(p.dtype) : 0));
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(T, p.workspace_bytes / std::max<int64_t>(row_bytes, 1)));
  // The workspace comes from the host allocator's cache (uninitialized, already mapped after the first call), not a
  // zero-filled vector whose fresh pages fault in on every call (~0.25 s a call at T 4096, V 32768 on a VM).
  const size_t half_bytes = half && grads ? static_cast<size_t>(chunk * V) * sizeof(uint16_t) : 0;
  const std::shared_ptr<Storage> ws = Storage::allocate(Device::cpu, static_cast<size_t>(chunk * V) * sizeof(float) + half_bytes);
  float* logits = static_cast<float*>(ws->data());
  uint16_t* logits_half = half_bytes ? reinterpret_cast<uint16_t*>(logits + chunk * V) : nullptr;
  const size_t in_size = dtype_size(p.dtype);
  ThreadPool& pool = ThreadPool::instance();
  auto rows_fn = pick_isa(&policy_loss_scalar::rows_pass, &policy_loss_avx2::rows_pass, &policy_loss_avx512::rows_pass);

  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t rows = std::min(chunk, T - t0);
    const void* hidden_chunk = static_cast<const char*>(p.hidden) + t0 * H * in_size;
    // 1. logits
    MatmulParams mm;
    mm.a = hidden_chunk;
    mm.b = p.weight;
    mm.c = logits;
    mm.ab_dtype = p.dtype;
    mm.c_dtype = DType::f32;
    mm.m = rows, mm.n = V, mm.k = H;
    mm.lda = H, mm.ldb = H, mm.ldc = V;
    mm.trans_b = true;
    mm.alpha = 1.f / p.temperature;
    mm.beta = 0.f;
    matmul_cpu(mm);
    // 2. rows
    const int64_t tasks = std::min<int64_t>(rows, pool.size() * 4);
    pool.parallel_for(tasks, [&](int64_t task) {
      int64_t r0, r1;
      split_range(rows, tasks, task, &r0, &r1);
      rows_fn(p, t0, r0, r1, logits, logits_half);
    });
    if (!grads) continue;
    const void* dlogits = logits_half ? static_cast<const void*>(logits_half) : static_cast<const void*>(logits);
    // 3. d_hidden rows of this chunk
    if (p.d_hidden) {
      MatmulParams dh;
      dh.a = dlogits;
      dh.b = p.weight;
      dh.c = p.d_hidden + t0 * H;
      dh.ab_dtype = p.dtype;
      dh.c_dtype = DType::f32;
      dh.m = rows, dh.n = H, dh.k = V;
      dh.lda = V, dh.ldb = H, dh.ldc = H;
      matmul_cpu(dh);
    }
    // 4. d_weight accumulates over chunks
    if (p.d_weight) {
      MatmulParams dw;
      dw.a = dlogits;
      dw.b = hidden_chunk;
      dw.c = p.d_weight;
      dw.ab_dtype = p.dtype;
      dw.c_dtype = DType::f32;
      dw.m = V, dw.n = H, dw.k = rows;
      dw.lda = V, dw.ldb = H, dw.ldc = H;
      dw.trans_a = true;
      dw.beta = t0 == 0 ? 0.f : 1.f;
      matmul_cpu(dw);
    }
  }
  if (p.d_weight && T == 0) std::fill(p.d_weight, p.d_weight + V * H, 0.f);
  // loss and nll, in token order
  double loss = 0.0, nll = 0.0, counted = 0.0;
  for (int64_t t = 0; t < T; ++t) {
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

}  // namespace qwenlong
