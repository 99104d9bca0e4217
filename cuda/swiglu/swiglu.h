// swiglu: the gated MLP activation, and its backward.
//   gate, up, out, dout, dgate, dup: (n) contiguous, one dtype (f32, f16, bf16); math in f32
//   out   = silu(gate) * up,           silu(g) = g * sigmoid(g)
//   dgate = dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g)))
//   dup   = dout * silu(g)
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct SwigluParams {
  const void* gate = nullptr;
  const void* up = nullptr;
  void* out = nullptr;
  const void* dout = nullptr;
  void* dgate = nullptr;
  void* dup = nullptr;
  int64_t n = 0;
  DType dtype = DType::f32;
};

void swiglu_forward_cpu(const SwigluParams& p);
void swiglu_backward_cpu(const SwigluParams& p);
void swiglu_forward_cuda(const SwigluParams& p);
void swiglu_backward_cuda(const SwigluParams& p);

#define QWENLONG_SWIGLU_DECLS                                               \
  void forward_range(const SwigluParams& p, int64_t begin, int64_t end);  \
  void backward_range(const SwigluParams& p, int64_t begin, int64_t end);
namespace swiglu_scalar { QWENLONG_SWIGLU_DECLS }
namespace swiglu_avx2 { QWENLONG_SWIGLU_DECLS }
namespace swiglu_avx512 { QWENLONG_SWIGLU_DECLS }
#undef QWENLONG_SWIGLU_DECLS

}  // namespace qwenlong
