// add with AVX2 + F16C: 8 lanes, f16/bf16 converted in registers. Large outputs use streaming stores so the
// written lines skip the read-for-ownership (the op is bound by memory bandwidth).
#include <immintrin.h>

#include "cuda/add/add.h"

namespace qwenlong {

namespace {

#include "cuda/common/simd_avx2.inc"

inline __m256 load8(const void* base, int64_t i, DType t) {
  if (t == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
  if (t == DType::f16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline void store8(void* base, int64_t i, DType t, __m256 v, bool stream) {
  if (t == DType::f32) {
    float* p = static_cast<float*>(base) + i;
    if (stream) _mm256_stream_ps(p, v); else _mm256_storeu_ps(p, v);
    return;
  }
  __m128i h = t == DType::f16 ? to_f16_v(v) : to_bf16_v(v);
  __m128i* p = reinterpret_cast<__m128i*>(static_cast<uint16_t*>(base) + i);
  if (stream) _mm_stream_si128(p, h); else _mm_storeu_si128(p, h);
}

// bf16 <-> f32 for 16 elements at a time without cross-lane shuffles: interleaving with zeros puts elements
// [0..3 | 8..11] and [4..7 | 12..15] in f32 registers, and packing the two back restores the order.
inline void load16_bf16(const uint16_t* p, __m256* lo, __m256* hi) {
  __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  *lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), x));
  *hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), x));
}

// Stores 16 bf16 from the two halves load16_bf16 made (packing restores the order).
inline void store16_bf16(uint16_t* p, __m256 lo, __m256 hi, bool stream) {
  __m256i packed = _mm256_packus_epi32(bf16_bits_v(lo), bf16_bits_v(hi));
  if (stream) _mm256_stream_si256(reinterpret_cast<__m256i*>(p), packed);
  else _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), packed);
}

void add_bf16_16(const AddParams& p, int64_t* i, int64_t end, bool stream) {
  const __m256 alpha = _mm256_set1_ps(p.alpha), beta = _mm256_set1_ps(p.beta);
  const uint16_t* a = static_cast<const uint16_t*>(p.a);
  const uint16_t* b = static_cast<const uint16_t*>(p.b);
  uint16_t* out = static_cast<uint16_t*>(p.out);
  for (; *i + 16 <= end; *i += 16) {
    __m256 alo, ahi;
    load16_bf16(a + *i, &alo, &ahi);
    alo = _mm256_mul_ps(alpha, alo);
    ahi = _mm256_mul_ps(alpha, ahi);
    if (b) {
      __m256 blo, bhi;
      load16_bf16(b + *i, &blo, &bhi);
      alo = _mm256_add_ps(alo, _mm256_mul_ps(beta, blo));
      ahi = _mm256_add_ps(ahi, _mm256_mul_ps(beta, bhi));
    }
    store16_bf16(out + *i, alo, ahi, stream);
  }
}

}  // namespace

void add_range_avx2(const AddParams& p, int64_t begin, int64_t end) {
  const size_t esize = dtype_size(p.dtype);
  const int64_t stream_min_bytes = int64_t(8) << 20;
  bool stream = static_cast<int64_t>((end - begin) * esize) >= stream_min_bytes;
  int64_t i = begin;
  if (stream) {  // streaming stores need 16/32-byte aligned addresses: peel up to the boundary
    const uintptr_t align = p.dtype == DType::f32 ? 32 : 16;
    int64_t peel = begin;
    while (peel < end && (reinterpret_cast<uintptr_t>(static_cast<char*>(p.out) + peel * esize) % align) != 0) ++peel;
    if ((reinterpret_cast<uintptr_t>(static_cast<char*>(p.out) + peel * esize) % align) != 0) stream = false;
    else {
      add_range_scalar(p, begin, peel);
      i = peel;
    }
  }
  if (stream && p.dtype == DType::bf16) {  // 32-byte streaming stores: align the output further
    while (i < end && (reinterpret_cast<uintptr_t>(static_cast<uint16_t*>(p.out) + i) % 32) != 0) {
      add_range_scalar(p, i, i + 1);
      ++i;
    }
  }
  if (p.dtype == DType::bf16) add_bf16_16(p, &i, end, stream);
  const __m256 alpha = _mm256_set1_ps(p.alpha), beta = _mm256_set1_ps(p.beta);
  if (p.b) {
    for (; i + 8 <= end; i += 8) {
      __m256 y = _mm256_add_ps(_mm256_mul_ps(alpha, load8(p.a, i, p.dtype)), _mm256_mul_ps(beta, load8(p.b, i, p.dtype)));
      store8(p.out, i, p.dtype, y, stream);
    }
  } else {
    for (; i + 8 <= end; i += 8) store8(p.out, i, p.dtype, _mm256_mul_ps(alpha, load8(p.a, i, p.dtype)), stream);
  }
  if (stream) _mm_sfence();
  add_range_scalar(p, i, end);
}

}  // namespace qwenlong
