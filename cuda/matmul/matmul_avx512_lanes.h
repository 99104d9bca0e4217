// The 16-lane f32 vector of the AVX-512 GEMM kernels (matmul_avx512.cc, and matmul_avx512bf16.cc, whose k step is a
// bf16 pair dot product instead of the FMA). Internal linkage, like matmul_x86.h: included only by files compiled
// with AVX-512 flags.
#pragma once
#include <immintrin.h>

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
  static reg dot(reg a, reg b, reg c) { return fma(a, b, c); }
};

}  // namespace
}  // namespace qwenlong
