// The attention CPU twin: entry points that pick the ISA build of attention_kernels.inc (the algorithm itself,
// shared by the three builds; attention.h states it).
#include "cuda/attention/attention.h"
#include "cuda/common/isa_variants.h"
#define QWENLONG_ISA_NS attention_scalar
#include "cuda/attention/attention_kernels.inc"

namespace qwenlong {

// The ISA builds (attention_avx2.cc, attention_avx512.cc).
#define QWENLONG_ATTENTION_DECLS                 \
  void forward(const AttentionParams& p);        \
  void backward(const AttentionParams& p);
namespace attention_avx2 { QWENLONG_ATTENTION_DECLS }
namespace attention_avx512 { QWENLONG_ATTENTION_DECLS }
#undef QWENLONG_ATTENTION_DECLS

void attention_forward_cpu(const AttentionParams& p) {
  pick_isa(&attention_scalar::forward, &attention_avx2::forward, &attention_avx512::forward)(p);
}

void attention_backward_cpu(const AttentionParams& p) {
  pick_isa(&attention_scalar::backward, &attention_avx2::backward, &attention_avx512::backward)(p);
}

}  // namespace qwenlong
