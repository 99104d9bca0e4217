// matmul with AVX2 + FMA: a 6 × 16 register tile (12 accumulators, 2 B vectors, 1 broadcast: 15 of the 16 ymm
// registers), 8-lane packers with f16/bf16 conversion (F16C / shifts). Blocks for a 32 KiB L1 and a 512 KiB L2:
// a B micro-panel of kc × 16 floats is 24 KiB, an A block of mc × kc is 216 KiB. kc = 384 rather than 256
// also means C, which every k block reads and writes once, streams through memory a third fewer times.
#include <immintrin.h>

#include "cuda/matmul/matmul_x86.h"

namespace qwenlong {

namespace {

struct Avx2 {
  using reg = __m256;
  static constexpr int width = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg dot(reg a, reg b, reg c) { return fma(a, b, c); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
};

constexpr int kMr = 6, kNv = 2;

}  // namespace

const GemmKernel& gemm_kernel_avx2() {
  static const GemmKernel kernel{kMr, kNv * Avx2::width, 144, 384, 4096, pack_vector, micro_tile<Avx2, kMr, kNv>,
                                   fma_rounds<Avx2>, 2 * kPeakChains * Avx2::width,
                                   micro_few<Avx2, kMr, kNv>, 1, finish_half_vector};
  return kernel;
}

}  // namespace qwenlong
