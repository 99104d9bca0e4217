// Memory-bound CPU twins are written once, as templates in an <op>_kernels.inc file, and compiled three times:
// in <op>_cpu.cc (baseline x86-64), <op>_avx2.cc and <op>_avx512.cc (each with its ISA's flags), each time in its
// own namespace. The code fixes its order of operations (explicit partial sums, no fused multiply-add), so the
// three builds give the same bits and differ only in how wide the compiler vectorizes them.
#pragma once
#include "cuda/common/cpu_features.h"

namespace qwenlong {

template <typename Fn>
Fn pick_isa(Fn scalar, Fn avx2, Fn avx512) {
  switch (current_isa()) {
    case Isa::avx512: return avx512;
    case Isa::avx2: return avx2;
    case Isa::scalar: break;
  }
  return scalar;
}

}  // namespace qwenlong
