// adamw: the fused optimizer step with decoupled weight decay (torch.optim.AdamW's update), in place.
//   params, m, v: (n) f32 (master weights and moments)   grads: (n) f32/f16/bf16   params_copy: (n) f16/bf16, optional
//   g = grads * grad_scale
//   params *= 1 - lr * weight_decay
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   params -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//   params_copy = params rounded to its dtype (the weights the model computes with)
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct AdamwParams {
  float* params = nullptr;
  const void* grads = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  void* params_copy = nullptr;
  DType grad_dtype = DType::f32;
  DType copy_dtype = DType::bf16;
  int64_t n = 0;
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.01f, grad_scale = 1.f;
  int64_t step = 1;
};

void adamw_cpu(const AdamwParams& p);
void adamw_cuda(const AdamwParams& p);

#define QWENLONG_ADAMW_DECLS void update_range(const AdamwParams& p, int64_t begin, int64_t end);
namespace adamw_scalar { QWENLONG_ADAMW_DECLS }
namespace adamw_avx2 { QWENLONG_ADAMW_DECLS }
namespace adamw_avx512 { QWENLONG_ADAMW_DECLS }
#undef QWENLONG_ADAMW_DECLS

// The step's scalar factors, computed the same way (in f64, then rounded) by both backends.
struct AdamwFactors {
  float decay;        // 1 - lr * weight_decay
  float step_size;    // lr / (1 - beta1^step)
  float bc2_sqrt;     // sqrt(1 - beta2^step)
};
AdamwFactors adamw_factors(const AdamwParams& p);

}  // namespace qwenlong
