// add with AVX-512: 16 lanes; the same arithmetic and rounding as the scalar and AVX2 kernels.
#include <immintrin.h>

#include "cuda/add/add.h"

namespace qwenlong {

namespace {

inline __m512 load16(const void* base, int64_t i, DType t) {
  if (t == DType::f32) return _mm512_loadu_ps(static_cast<const float*>(base) + i);
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
  if (t == DType::f16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline __m256i to_bf16(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  __mmask16 is_nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan, rounded, quiet));
}

inline void store16(void* base, int64_t i, DType t, __m512 v, bool stream) {
  if (t == DType::f32) {
    float* p = static_cast<float*>(base) + i;
    if (stream) _mm512_stream_ps(p, v); else _mm512_storeu_ps(p, v);
    return;
  }
  __m256i h = t == DType::f16 ? _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) : to_bf16(v);
  __m256i* p = reinterpret_cast<__m256i*>(static_cast<uint16_t*>(base) + i);
  if (stream) _mm256_stream_si256(p, h); else _mm256_storeu_si256(p, h);
}

}  // namespace

void add_range_avx512(const AddParams& p, int64_t begin, int64_t end) {
  const size_t esize = dtype_size(p.dtype);
  const int64_t stream_min_bytes = int64_t(8) << 20;
  bool stream = static_cast<int64_t>((end - begin) * esize) >= stream_min_bytes;
  int64_t i = begin;
  if (stream) {
    const uintptr_t align = p.dtype == DType::f32 ? 64 : 32;
    int64_t peel = begin;
    while (peel < end && (reinterpret_cast<uintptr_t>(static_cast<char*>(p.out) + peel * esize) % align) != 0) ++peel;
    if ((reinterpret_cast<uintptr_t>(static_cast<char*>(p.out) + peel * esize) % align) != 0) stream = false;
    else {
      add_range_scalar(p, begin, peel);
      i = peel;
    }
  }
  const __m512 alpha = _mm512_set1_ps(p.alpha), beta = _mm512_set1_ps(p.beta);
  if (p.b) {
    for (; i + 16 <= end; i += 16) {
      __m512 y = _mm512_add_ps(_mm512_mul_ps(alpha, load16(p.a, i, p.dtype)), _mm512_mul_ps(beta, load16(p.b, i, p.dtype)));
      store16(p.out, i, p.dtype, y, stream);
    }
  } else {
    for (; i + 16 <= end; i += 16) store16(p.out, i, p.dtype, _mm512_mul_ps(alpha, load16(p.a, i, p.dtype)), stream);
  }
  if (stream) _mm_sfence();
  add_range_scalar(p, i, end);
}

}  // namespace qwenlong
