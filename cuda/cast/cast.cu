// cast on the GPU: a grid-stride loop, one element per thread and step (memory-bound; the conversions are those of
// cuda_elem.cuh, round to nearest even, as the CPU twin's).
#include "cuda/cast/cast.h"
#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"

namespace qwenlong {

namespace {

template <typename From, typename To>
__global__ void cast_kernel(const From* __restrict__ x, To* __restrict__ out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = from_f32<To>(to_f32(x[i]));
}

}  // namespace

void cast_cuda(const CastParams& p) {
  if (p.n == 0) return;
  NvtxRange range("qwenlong.cast");
  if (p.from == p.to) {
    check_cuda(cudaMemcpyAsync(p.out, p.x, static_cast<size_t>(p.n) * dtype_size(p.from), cudaMemcpyDeviceToDevice, compute_stream()), "ops.cast");
    return;
  }
  dispatch_float_cuda(p.from, "ops.cast", [&](auto from_tag) {
    dispatch_float_cuda(p.to, "ops.cast", [&](auto to_tag) {
      using From = decltype(from_tag);
      using To = decltype(to_tag);
      cast_kernel<From, To><<<blocks_for(p.n, 256, 132 * 32), 256, 0, compute_stream()>>>(static_cast<const From*>(p.x), static_cast<To*>(p.out), p.n);
    });
  });
  check_launch("ops.cast");
}

}  // namespace qwenlong
