// gradNorm / clipGrad on the GPU (shapes and rules in grad_norm.h). Pass 1: one block per 64K-element chunk sums
// its squares in f64 (block reduction) into a partials buffer. Pass 2: one thread adds the partials in chunk
// order and writes the norm and the clip scale to device memory. Pass 3 (clip): each tensor is scaled by the
// device-resident scale, so nothing waits for the host.
#include <memory>
#include <vector>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/grad_norm/grad_norm.h"

namespace qwenlong {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void chunk_squares_kernel(const T* __restrict__ x, int64_t n, double* __restrict__ partials) {
  __shared__ double shared[kThreads];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kGradNormChunk;
  const int64_t end = min(begin + kGradNormChunk, n);
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = to_f32(x[i]);
    s += v * v;
  }
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

__global__ void finish_kernel(const double* __restrict__ partials, int64_t count, float* __restrict__ norm, float* __restrict__ scale,
                              float max_norm) {
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i) total += partials[i];
  const float nrm = static_cast<float>(sqrt(total));
  *norm = nrm;
  const double coef = static_cast<double>(max_norm) / (static_cast<double>(nrm) + 1e-6);
  *scale = coef < 1.0 ? static_cast<float>(coef) : 1.f;
}

template <typename T>
__global__ void scale_kernel(T* __restrict__ x, int64_t n, const float* __restrict__ scale) {
  const float s = *scale;
  if (s == 1.f) return;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = from_f32<T>(__fmul_rn(to_f32(x[i]), s));
}

}  // namespace

void grad_norm_cuda(const GradNormParams& p) {
  NvtxRange range(p.clip ? "qwenlong.clipGrad" : "qwenlong.gradNorm");
  int64_t total_chunks = 0;
  for (const GradTensor& g : p.tensors) total_chunks += (g.n + kGradNormChunk - 1) / kGradNormChunk;
  auto scratch = Storage::allocate(Device::cuda, static_cast<size_t>(total_chunks + 1) * sizeof(double) + sizeof(float));
  double* partials = static_cast<double*>(scratch->data());
  float* scale = reinterpret_cast<float*>(partials + total_chunks + 1);
  int64_t offset = 0;
  // 1. chunk sums
  for (const GradTensor& g : p.tensors) {
    const int64_t chunks = (g.n + kGradNormChunk - 1) / kGradNormChunk;
    if (chunks == 0) continue;
    dispatch_float_cuda(g.dtype, "ops.gradNorm", [&](auto tag) {
      using T = decltype(tag);
      chunk_squares_kernel<T><<<static_cast<unsigned>(chunks), kThreads, 0, compute_stream()>>>(static_cast<const T*>(g.data), g.n, partials + offset);
    });
    check_launch("ops.gradNorm");
    offset += chunks;
  }
  // 2. norm and scale
  finish_kernel<<<1, 1, 0, compute_stream()>>>(partials, total_chunks, p.norm, scale, p.max_norm);
  check_launch("ops.gradNorm");
  if (!p.clip) return;
  // 3. scale every tensor
  for (const GradTensor& g : p.tensors) {
    if (g.n == 0) continue;
    dispatch_float_cuda(g.dtype, "ops.clipGrad", [&](auto tag) {
      using T = decltype(tag);
      scale_kernel<T><<<blocks_for(g.n, 256, 132 * 16), 256, 0, compute_stream()>>>(static_cast<T*>(g.data), g.n, scale);
    });
    check_launch("ops.clipGrad");
  }
}

}  // namespace qwenlong
