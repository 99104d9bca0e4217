// swiglu on the GPU: one thread per element, grid-stride (shapes in swiglu.h). expf on the GPU and std::exp on
// the CPU differ in the last bit, so the twins agree within the f32 tolerance, not bitwise.
#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/swiglu/swiglu.h"

namespace qwenlong {

namespace {

template <typename T>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = to_f32(gate[i]);
    const float s = 1.f / (1.f + expf(-g));
    out[i] = from_f32<T>((g * s) * to_f32(up[i]));
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(const T* __restrict__ gate, const T* __restrict__ up, const T* __restrict__ dout,
                                       T* __restrict__ dgate, T* __restrict__ dup, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = to_f32(gate[i]), u = to_f32(up[i]), d = to_f32(dout[i]);
    const float s = 1.f / (1.f + expf(-g));
    dgate[i] = from_f32<T>((d * u) * (s * (1.f + g * (1.f - s))));
    dup[i] = from_f32<T>(d * (g * s));
  }
}

}  // namespace

void swiglu_forward_cuda(const SwigluParams& p) {
  if (p.n == 0) return;
  NvtxRange range("qwenlong.swiglu");
  dispatch_float_cuda(p.dtype, "ops.swiglu", [&](auto t) {
    using T = decltype(t);
    swiglu_forward_kernel<T><<<blocks_for(p.n, 256, 132 * 32), 256, 0, compute_stream()>>>(
        static_cast<const T*>(p.gate), static_cast<const T*>(p.up), static_cast<T*>(p.out), p.n);
  });
  check_launch("ops.swiglu");
}

void swiglu_backward_cuda(const SwigluParams& p) {
  if (p.n == 0) return;
  NvtxRange range("qwenlong.swigluBackward");
  dispatch_float_cuda(p.dtype, "ops.swigluBackward", [&](auto t) {
    using T = decltype(t);
    swiglu_backward_kernel<T><<<blocks_for(p.n, 256, 132 * 32), 256, 0, compute_stream()>>>(
        static_cast<const T*>(p.gate), static_cast<const T*>(p.up), static_cast<const T*>(p.dout), static_cast<T*>(p.dgate),
        static_cast<T*>(p.dup), p.n);
  });
  check_launch("ops.swigluBackward");
}

}  // namespace qwenlong
