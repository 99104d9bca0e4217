// rmsnorm: y = x / rms(x) * w over the last dimension, and its backward.
//   x, y, dy, dx: (rows, C)   w: (C)   rrms: (rows) f32, the reciprocal RMS kept for the backward   dw: (C) f32
//   rrms_r = 1 / sqrt(mean_c x[r,c]^2 + eps)
//   dx[r,c] = rrms_r * (dy[r,c] w[c] - x[r,c] rrms_r^2 * mean_c(dy[r,c] w[c] x[r,c]))
//   dw[c]   = (accumulate ? dw[c] : 0) + sum_r dy[r,c] x[r,c] rrms_r
// x, y, dy, dx and w share a dtype (f32, f16, bf16); math in f32.
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct RmsNormParams {
  const void* x = nullptr;
  const void* w = nullptr;
  void* y = nullptr;
  float* rrms = nullptr;
  // backward
  const void* dy = nullptr;
  const float* rrms_in = nullptr;
  void* dx = nullptr;
  float* dw = nullptr;
  bool accumulate_dw = false;
  int64_t rows = 0, cols = 0;
  float eps = 1e-5f;
  DType dtype = DType::f32;
};

void rmsnorm_forward_cpu(const RmsNormParams& p);
void rmsnorm_backward_cpu(const RmsNormParams& p);
void rmsnorm_forward_cuda(const RmsNormParams& p);
void rmsnorm_backward_cuda(const RmsNormParams& p);

// The row kernels of the CPU twin, one build per ISA (rmsnorm_kernels.inc).
#define QWENLONG_RMSNORM_DECLS                                                                      \
  void forward_rows(const RmsNormParams& p, int64_t r0, int64_t r1);                                \
  void backward_rows(const RmsNormParams& p, int64_t r0, int64_t r1, float* dw_partial);
namespace rmsnorm_scalar { QWENLONG_RMSNORM_DECLS }
namespace rmsnorm_avx2 { QWENLONG_RMSNORM_DECLS }
namespace rmsnorm_avx512 { QWENLONG_RMSNORM_DECLS }
#undef QWENLONG_RMSNORM_DECLS

}  // namespace qwenlong
