// cast: an elementwise copy from one float dtype to another (f32, f16, bf16), rounding to nearest even when
// narrowing; the same conversion as every other op's stores, so the CPU and the GPU give the same bits.
//   x, out: (n) contiguous; from = x's dtype, to = out's dtype (equal dtypes: a plain copy).
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct CastParams {
  const void* x = nullptr;
  void* out = nullptr;
  int64_t n = 0;
  DType from = DType::f32;
  DType to = DType::f32;
};

void cast_cpu(const CastParams& p);
void cast_cuda(const CastParams& p);

}  // namespace qwenlong
