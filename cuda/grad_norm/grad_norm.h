// gradNorm / clipGrad: the global L2 norm over many tensors, and scaling them all so it is at most max_norm.
//   tensors[k]: (n_k) f32/f16/bf16   norm: () f32
//   norm = sqrt(sum_k sum_i g_k[i]^2)                        (squares summed in f64)
//   clip: scale = min(1, max_norm / (norm + 1e-6)); g_k *= scale   (torch.nn.utils.clip_grad_norm_'s rule)
// Each tensor is cut into fixed 64K-element chunks; chunk sums are added in (tensor, chunk) order, so the result
// does not depend on the thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct GradTensor {
  void* data;
  int64_t n;
  DType dtype;
};

struct GradNormParams {
  std::vector<GradTensor> tensors;
  float* norm = nullptr;  // () f32 on the tensors' device
  bool clip = false;
  float max_norm = 1.f;
};

constexpr int64_t kGradNormChunk = 1 << 16;

void grad_norm_cpu(const GradNormParams& p);
void grad_norm_cuda(const GradNormParams& p);

}  // namespace qwenlong
