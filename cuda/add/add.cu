// add on the GPU: one thread per vector of elements (float4 for f32, 8 halves for f16/bf16), then the tail.
//   a, b, out: (n); out = alpha * a + beta * b   (b == nullptr: out = alpha * a)
// Products and sum round separately (__fmul_rn / __fadd_rn) to match the CPU twin bit for bit.
#include "cuda/add/add.h"
#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"

namespace qwenlong {

namespace {

template <typename T>
__device__ __forceinline__ T add_one(T a, const T* b, int64_t i, float alpha, float beta) {
  float y = __fmul_rn(alpha, to_f32(a));
  if (b) y = __fadd_rn(y, __fmul_rn(beta, to_f32(b[i])));
  return from_f32<T>(y);
}

// Each thread handles VEC consecutive elements with one 16-byte load per operand.
template <typename T>
__global__ void add_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, int64_t n, float alpha,
                           float beta) {
  constexpr int VEC = 16 / sizeof(T);
  const int64_t vectors = n / VEC;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors; v += stride) {
    union Pack { uint4 raw; T x[VEC]; } pa, pb, po;
    pa.raw = reinterpret_cast<const uint4*>(a)[v];
    if (b) pb.raw = reinterpret_cast<const uint4*>(b)[v];
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      float y = __fmul_rn(alpha, to_f32(pa.x[k]));
      if (b) y = __fadd_rn(y, __fmul_rn(beta, to_f32(pb.x[k])));
      po.x[k] = from_f32<T>(y);
    }
    reinterpret_cast<uint4*>(out)[v] = po.raw;
  }
  // Tail: the last n % VEC elements.
  const int64_t tail = vectors * VEC + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (blockIdx.x == 0 && tail < n) out[tail] = add_one(a[tail], b, tail, alpha, beta);
}

template <typename T>
void launch(const AddParams& p) {
  constexpr int VEC = 16 / sizeof(T);
  const int threads = 256;
  unsigned blocks = blocks_for(p.n / VEC > 0 ? p.n / VEC : 1, threads, 132 * 16);
  add_kernel<T><<<blocks, threads, 0, compute_stream()>>>(static_cast<const T*>(p.a), static_cast<const T*>(p.b),
                                                          static_cast<T*>(p.out), p.n, p.alpha, p.beta);
}

}  // namespace

void add_cuda(const AddParams& p) {
  if (p.n == 0) return;
  NvtxRange range("qwenlong.add");
  switch (p.dtype) {
    case DType::f32: launch<float>(p); break;
    case DType::f16: launch<__half>(p); break;
    case DType::bf16: launch<__nv_bfloat16>(p); break;
    default: throw_type("add: unsupported dtype");
  }
  check_launch("add");
}

}  // namespace qwenlong
