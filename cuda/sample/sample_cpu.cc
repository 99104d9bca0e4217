// CPU sampling of host logits: see sample.h. The row kernel is sample_kernels.inc, compiled for each ISA.
#include "cuda/common/isa_variants.h"
#include "cuda/sample/sample.h"
#define QWENLONG_ISA_NS sample_scalar
#include "cuda/sample/sample_kernels.inc"

namespace qwenlong {

namespace sample_avx2 { void sample_rows(const SampleParams& p); }
namespace sample_avx512 { void sample_rows(const SampleParams& p); }

void sample_rows_cpu(const SampleParams& p) {
  pick_isa(&sample_scalar::sample_rows, &sample_avx2::sample_rows, &sample_avx512::sample_rows)(p);
}

}  // namespace qwenlong
