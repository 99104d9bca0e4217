// matmul with AVX-512F: a 14 × 32 register tile (28 accumulators, 2 B vectors, 1 broadcast: 31 of the 32 zmm
// registers). The packers are the AVX2 ones (8 lanes are plenty for a pass that moves each element once per
// block). Blocks: a B micro-panel of kc × 32 floats is 32 KiB (L1 is 48 KiB on current AVX-512 cores), an A
// block of mc × kc is 224 KiB (L2 is 1-2 MiB).
#include <immintrin.h>

#include "cuda/matmul/matmul_x86.h"

namespace qwenlong {

namespace {

struct Avx512 {
  using reg = __m512;
  static constexpr int width = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
};

constexpr int kMr = 14, kNv = 2;

}  // namespace

const GemmKernel& gemm_kernel_avx512() {
  static const GemmKernel kernel{kMr, kNv * Avx512::width, 224, 256, 4096, pack_vector, micro_tile<Avx512, kMr, kNv>,
                                   fma_rounds<Avx512>, 2 * kPeakChains * Avx512::width};
  return kernel;
}

}  // namespace qwenlong
