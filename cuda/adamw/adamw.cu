// adamw on the GPU (shapes in adamw.h): one thread per element, grid-stride; the step's factors come from the
// host (adamw_factors), and every product and sum rounds separately, as in the CPU twin.
#include "cuda/adamw/adamw.h"
#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"

namespace qwenlong {

namespace {

template <typename G, typename Copy>
__global__ void adamw_kernel(float* __restrict__ params, const G* __restrict__ grads, float* __restrict__ m_buf, float* __restrict__ v_buf,
                             Copy* __restrict__ copy, int64_t n, float beta1, float beta2, float eps, float grad_scale, AdamwFactors f) {
  const float one_minus_b1 = 1.f - beta1, one_minus_b2 = 1.f - beta2;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = __fmul_rn(to_f32(grads[i]), grad_scale);
    const float m = __fadd_rn(__fmul_rn(beta1, m_buf[i]), __fmul_rn(one_minus_b1, g));
    const float v = __fadd_rn(__fmul_rn(beta2, v_buf[i]), __fmul_rn(one_minus_b2, __fmul_rn(g, g)));
    m_buf[i] = m;
    v_buf[i] = v;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), f.bc2_sqrt), eps);
    const float w = __fsub_rn(__fmul_rn(params[i], f.decay), __fmul_rn(f.step_size, __fdiv_rn(m, denom)));
    params[i] = w;
    if (copy) copy[i] = from_f32<Copy>(w);
  }
}

template <typename G, typename Copy>
void launch(const AdamwParams& p, const AdamwFactors& f) {
  adamw_kernel<G, Copy><<<blocks_for(p.n, 256, 132 * 16), 256, 0, compute_stream()>>>(
      p.params, static_cast<const G*>(p.grads), p.m, p.v, static_cast<Copy*>(p.params_copy), p.n, p.beta1, p.beta2, p.eps, p.grad_scale, f);
}

}  // namespace

void adamw_cuda(const AdamwParams& p) {
  if (p.n == 0) return;
  NvtxRange range("qwenlong.adamw");
  const AdamwFactors f = adamw_factors(p);
  dispatch_float_cuda(p.grad_dtype, "ops.adamw", [&](auto tag) {
    using G = decltype(tag);
    if (!p.params_copy) launch<G, float>(p, f);
    else if (p.copy_dtype == DType::f16) launch<G, __half>(p, f);
    else launch<G, __nv_bfloat16>(p, f);
  });
  check_launch("ops.adamw");
}

}  // namespace qwenlong
