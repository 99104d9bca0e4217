// rope on the GPU (shapes in rope.h): one block per token; thread i of the block owns pair i, computes its angle
// in f64 once and rotates that pair in every head.
#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/rope/rope.h"

namespace qwenlong {

namespace {

template <typename T>
__global__ void rope_kernel(const T* __restrict__ x, T* __restrict__ out, const int32_t* __restrict__ positions, int64_t offset,
                            int64_t heads, int64_t head_dim, int64_t rotary_dim, double theta, bool interleaved, bool inverse) {
  const int64_t t = blockIdx.x;
  const int64_t pairs = rotary_dim / 2;
  const double pos = positions ? static_cast<double>(positions[t]) : static_cast<double>(t + offset);
  for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
    const double angle = pos * pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(rotary_dim));
    double sd, cd;
    sincos(angle, &sd, &cd);
    const float c = static_cast<float>(cd);
    const float s = static_cast<float>(inverse ? -sd : sd);
    const int64_t ia = interleaved ? 2 * i : i;
    const int64_t ib = interleaved ? 2 * i + 1 : i + pairs;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t base = (t * heads + h) * head_dim;
      const float a = to_f32(x[base + ia]), b = to_f32(x[base + ib]);
      out[base + ia] = from_f32<T>(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
      out[base + ib] = from_f32<T>(__fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c)));
    }
  }
  // dims past the rotary part are copied
  const int64_t rest = head_dim - rotary_dim;
  for (int64_t j = threadIdx.x; j < heads * rest; j += blockDim.x) {
    const int64_t idx = (t * heads + j / rest) * head_dim + rotary_dim + j % rest;
    out[idx] = x[idx];
  }
}

}  // namespace

void rope_cuda(const RopeParams& p) {
  if (p.tokens == 0 || p.heads == 0) return;
  NvtxRange range(p.inverse ? "qwenlong.ropeBackward" : "qwenlong.rope");
  dispatch_float_cuda(p.dtype, "ops.rope", [&](auto tag) {
    using T = decltype(tag);
    rope_kernel<T><<<static_cast<unsigned>(p.tokens), 128, 0, compute_stream()>>>(static_cast<const T*>(p.x), static_cast<T*>(p.out),
                                                                                 p.positions, p.offset, p.heads, p.head_dim,
                                                                                 p.rotary_dim, p.theta, p.interleaved, p.inverse);
  });
  check_launch("ops.rope");
}

}  // namespace qwenlong
