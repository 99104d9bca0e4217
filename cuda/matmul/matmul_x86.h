// The vector pieces matmul_avx2.cc and matmul_avx512.cc share: packers built on 8-lane AVX2 loads and an 8 × 8
// transpose, and the register-tile microkernel as a template over the vector type. Everything here has internal
// linkage (anonymous namespace) on purpose: each ISA file compiles its own copy with its own target flags, and
// the linker must never fold the AVX-512 copy into the AVX2 path.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cuda/matmul/matmul_cpu.h"

namespace qwenlong {
namespace {

// ---- Loads with conversion to f32 ----

template <DType T>
struct Element;
template <>
struct Element<DType::f32> {
  using type = float;
};
template <>
struct Element<DType::f16> {
  using type = uint16_t;
};
template <>
struct Element<DType::bf16> {
  using type = uint16_t;
};

template <DType T>
inline __m256 halves_to_f32(__m128i h) {
  if constexpr (T == DType::f16) return _mm256_cvtph_ps(h);
  else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// 8 consecutive elements as f32.
template <DType T>
inline __m256 load8(const typename Element<T>::type* p) {
  if constexpr (T == DType::f32) return _mm256_loadu_ps(p);
  else return halves_to_f32<T>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Lane masks for maskload/maskstore: the first n lanes on.
inline __m256i first_lanes(int n) {
  alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - n));
}

// The first n (0..8) of 8 consecutive elements as f32, the rest zero; reads nothing past element n.
template <DType T>
inline __m256 load8_first(const typename Element<T>::type* p, int n) {
  if (n >= 8) return load8<T>(p);
  if (n <= 0) return _mm256_setzero_ps();
  if constexpr (T == DType::f32) {
    return _mm256_maskload_ps(p, first_lanes(n));
  } else {
    uint16_t tmp[8] = {};
    std::memcpy(tmp, p, static_cast<size_t>(n) * 2);
    return load8<T>(tmp);
  }
}

// Stores the first n (1..8) lanes of v with plain 128/64/32-bit stores (masked stores are slow on some cores).
inline void store_first(float* p, __m256 v, int n) {
  if (n >= 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  __m128 part = _mm256_castps256_ps128(v);
  if (n >= 4) {
    _mm_storeu_ps(p, part);
    p += 4;
    n -= 4;
    part = _mm256_extractf128_ps(v, 1);
  }
  if (n >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
    p += 2;
    n -= 2;
    part = _mm_movehl_ps(part, part);
  }
  if (n >= 1) _mm_store_ss(p, part);
}

// In place: row q of the 8 × 8 block becomes column q.
inline void transpose8(__m256 v[8]) {
  __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  // s0: rows 0-3 at columns 0 | 4; s1: columns 1 | 5; s2: 2 | 6; s3: 3 | 7; s4-s7 the same for rows 4-7.
  __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// ---- The f16/bf16 C rows (GemmKernel::finish_half) ----

#include "cuda/common/simd_avx2.inc"

// finish_half_row_scalar 8 lanes at a time: the same conversions, and the sum a multiply then an add (the build does
// not contract them), so the same bits.
void finish_half_vector(const float* t, uint16_t* c, int64_t n, DType dtype, float beta) {
  const bool bf = dtype == DType::bf16;
  const __m256 vb = _mm256_set1_ps(beta);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 y = _mm256_loadu_ps(t + j);
    if (beta != 0.f) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + j));
      y = _mm256_add_ps(y, _mm256_mul_ps(vb, bf ? halves_to_f32<DType::bf16>(h) : halves_to_f32<DType::f16>(h)));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + j), bf ? to_bf16_v(y) : to_f16_v(y));
  }
  finish_half_row_scalar(t + j, c + j, n - j, dtype, beta);
}

// ---- Packers (the contract is PackFn's in matmul_cpu.h) ----

// x contiguous (sx == 1: A transposed, B not). Eight k at a time across every panel: each source row is read
// front to back and each panel gets 8 rows (at least 192 contiguous bytes) per visit. (Panel by panel would walk
// the rows a power-of-two stride apart, all in one L1 set; k by k would scatter single rows over every panel.)
template <DType T>
void pack_x_contiguous(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  using E = typename Element<T>::type;
  const E* data = static_cast<const E*>(src.data) + x0 + k0 * src.sk;
  const int64_t panel_floats = r * kc;
  for (int64_t k_lo = 0; k_lo < kc; k_lo += 8) {
    const int64_t k_hi = std::min<int64_t>(kc, k_lo + 8);
    float* panel = out;
    for (int64_t panel_x = 0; panel_x < nx; panel_x += r, panel += panel_floats) {
      for (int64_t k = k_lo; k < k_hi; ++k) {
        const E* row = data + k * src.sk;
        for (int g = 0; g < r; g += 8) {
          const int64_t x = panel_x + g;
          // A whole 8-lane load when all 8 lie in [0, nx) (lanes past r belong to the next panel and are not stored).
          const __m256 v = x + 8 <= nx ? load8<T>(row + x) : load8_first<T>(row + x, static_cast<int>(nx - x));
          store_first(panel + k * r + g, v, r - g);
        }
      }
    }
  }
}

// The k-contiguous packers read 8 rows side by side, each only kc elements long: streams too short for the hardware
// prefetchers to pick up (a decode step's weight matrix with rows of 1-2 KiB was read at half the memory's speed).
// So while they read the line at element k of rows x .. x + 7, they ask for the same line of rows x + 8 .. x + 15,
// which they read next (a prefetch past the matrix is harmless: it never faults).
inline void prefetch_next_rows(const void* row0, int64_t row_bytes, int64_t byte) {
  if (byte % 64 != 0) return;
  const char* p = static_cast<const char*>(row0) + 8 * row_bytes + byte;
#pragma GCC unroll 8
  for (int q = 0; q < 8; ++q) _mm_prefetch(p + q * row_bytes, _MM_HINT_T0);
}

// k contiguous (sk == 1: A not transposed, B transposed): 8 rows × 8 k at a time through a transpose.
template <DType T>
void pack_k_contiguous(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  using E = typename Element<T>::type;
  const E* data = static_cast<const E*>(src.data);
  const int64_t row_bytes = src.sx * static_cast<int64_t>(sizeof(E));
  for (int64_t panel_x = 0; panel_x < nx; panel_x += r, out += r * kc) {
    const int64_t valid = std::min<int64_t>(r, nx - panel_x);
    for (int g = 0; g < r; g += 8) {
      const int rows = static_cast<int>(std::clamp<int64_t>(valid - g, 0, 8));
      const int lanes = std::min(8, r - g);
      const E* row0 = data + (x0 + panel_x + g) * src.sx + k0;
      for (int64_t k = 0; k < kc; k += 8) {
        const int kn = static_cast<int>(std::min<int64_t>(8, kc - k));
        prefetch_next_rows(row0, row_bytes, k * static_cast<int64_t>(sizeof(E)));
        __m256 v[8];
        for (int q = 0; q < 8; ++q) v[q] = q < rows ? load8_first<T>(row0 + q * src.sx + k, kn) : _mm256_setzero_ps();
        transpose8(v);
        for (int q = 0; q < kn; ++q) store_first(out + (k + q) * r + g, v[q], lanes);
      }
    }
  }
}

template <DType T>
void pack_typed(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  if (src.sx == 1) pack_x_contiguous<T>(src, x0, nx, k0, kc, r, out);
  else if (src.sk == 1) pack_k_contiguous<T>(src, x0, nx, k0, kc, r, out);
  else pack_panels_scalar(src, x0, nx, k0, kc, r, out);
}

[[maybe_unused]] void pack_vector(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  switch (src.dtype) {
    case DType::f32: pack_typed<DType::f32>(src, x0, nx, k0, kc, r, out); break;
    case DType::f16: pack_typed<DType::f16>(src, x0, nx, k0, kc, r, out); break;
    case DType::bf16: pack_typed<DType::bf16>(src, x0, nx, k0, kc, r, out); break;
    default: break;  // the binding admits float dtypes only
  }
}

// ---- The microkernel ----
//
// V: the vector type (reg, width, zero/load/store/broadcast/fma/mul, and dot: the k step, an FMA for f32 panels, a
// pair dot product for the bf16 pairs of matmul_avx512bf16.cc, where kc counts pairs). The tile is R rows of the
// MR-row A panel (R = MR but for the last rows of a block) × P B panels of NV vectors each (panel q at b + q ·
// b_stride); per k it loads P · NV vectors of B, broadcasts R values of A and issues R · P · NV fused multiply-adds
// (or pair dot products) into accumulators that never leave the registers. `n` counts the valid columns over the P
// panels. The epilogue is the same for full and edge tiles (an edge tile goes through a small buffer), so every
// element of C gets the same arithmetic wherever its tile falls and however many rows or panels share it: each is one
// FMA chain over k in order (with pairs: the odd k of a pair, then the even one), then alpha · acc + beta · C.
template <class V, int MR, int NV, int R, int P>
void tile_rows(int64_t kc, const float* a, const float* b, int64_t b_stride, float* c, int64_t ldc, int64_t m, int64_t n,
               float alpha, float beta) {
  using reg = typename V::reg;
  constexpr int W = V::width, NR = NV * W;
  // The C tile is read (or written) only after kc rank-1 updates: ask for its lines now so they arrive meanwhile.
  for (int64_t i = 0; i < m; ++i) {
    const char* row = reinterpret_cast<const char*>(c + i * ldc);
    for (int64_t byte = 0; byte < n * 4 + 63; byte += 64) _mm_prefetch(row + std::min<int64_t>(byte, n * 4 - 1), _MM_HINT_T0);
  }
  reg acc[R][P * NV];
#pragma GCC unroll 32
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < P * NV; ++j) acc[i][j] = V::zero();
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    reg bv[P * NV];
#pragma GCC unroll 8
    for (int j = 0; j < P * NV; ++j) bv[j] = V::load(b + (j / NV) * b_stride + p * NR + (j % NV) * W);
#pragma GCC unroll 32
    for (int i = 0; i < R; ++i) {
      const reg av = V::broadcast(a + p * MR + i);
#pragma GCC unroll 8
      for (int j = 0; j < P * NV; ++j) acc[i][j] = V::dot(av, bv[j], acc[i][j]);
    }
  }

  const reg va = V::set1(alpha), vb = V::set1(beta);
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q) {
    const int64_t nq = std::min<int64_t>(NR, n - q * NR);
    if (nq <= 0) break;
    float* cq = c + q * NR;
    const bool full = m == R && nq == NR;
    alignas(64) float edge[R * NR];
    float* dst = cq;
    int64_t ld = ldc;
    if (!full) {
      dst = edge;
      ld = NR;
      std::memset(edge, 0, sizeof(edge));
      if (beta != 0.f) {
        for (int64_t i = 0; i < m; ++i) std::memcpy(edge + i * NR, cq + i * ldc, static_cast<size_t>(nq) * 4);
      }
    }
#pragma GCC unroll 32
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* o = dst + i * ld + j * W;
        // C = alpha · acc + beta · C, one rounding for the sum; beta == 0 never reads C.
        V::store(o, beta == 0.f ? V::mul(va, acc[i][q * NV + j]) : V::fma(va, acc[i][q * NV + j], V::mul(vb, V::load(o))));
      }
    }
    if (!full) {
      for (int64_t i = 0; i < m; ++i) std::memcpy(cq + i * ldc, edge + i * NR, static_cast<size_t>(nq) * 4);
    }
  }
}

// The register tile (GemmKernel::micro): a full MR-row tile, or only the rows there are (the last rows of a block
// skip the FMAs of the rows that do not exist: a decode step's one row used to pay for MR).
template <class V, int MR, int NV, int R = MR>
void micro_tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t m, int64_t n, float alpha,
                float beta) {
  if constexpr (R > 1) {
    if (m < R) return micro_tile<V, MR, NV, R - 1>(kc, a, b, c, ldc, m, n, alpha, beta);
  }
  tile_rows<V, MR, NV, R, 1>(kc, a, b, 0, c, ldc, m, n, alpha, beta);
}

// A block of fewer than MR rows across many panels (GemmKernel::micro_few): R rows of each panel, panels taken
// P at a time so that one or two rows still keep about eight accumulator chains in flight (one row of one panel
// is two chains, each waiting out the FMA latency at every k). Same arithmetic per element as micro_tile.
template <class V, int MR, int NV, int R = MR - 1>
void micro_few(int64_t kc, const float* a, const float* b, int64_t b_stride, float* c, int64_t ldc, int64_t m, int64_t n,
               float alpha, float beta) {
  if constexpr (R > 1) {
    if (m < R) return micro_few<V, MR, NV, R - 1>(kc, a, b, b_stride, c, ldc, m, n, alpha, beta);
  }
  constexpr int NR = NV * V::width;
  constexpr int P = std::max(1, std::min(4, 8 / (R * NV)));
  int64_t j = 0;
  if constexpr (P > 1) {
    for (; j + P * NR <= n; j += P * NR, b += P * b_stride) tile_rows<V, MR, NV, R, P>(kc, a, b, b_stride, c + j, ldc, m, P * NR, alpha, beta);
  }
  for (; j < n; j += NR, b += b_stride) tile_rows<V, MR, NV, R, 1>(kc, a, b, 0, c + j, ldc, m, std::min<int64_t>(NR, n - j), alpha, beta);
}

// The multiply-add peak probe (GemmKernel::fma_rounds): 12 independent chains of the kernel's k step (V::dot: the
// FMA, or the bf16 pair dot product), more than its latency × its pipes on current cores, so the pipes never wait.
// The operand's bits read as 2^-10 in both bf16 halves and as about 9.78e-4 as one f32, so the sums grow slowly and
// stay finite either way. The result depends on every chain, so none is optimized away.
constexpr int kPeakChains = 12;

template <class V>
float fma_rounds(int64_t iterations) {
  using reg = typename V::reg;
  reg acc[kPeakChains];
#pragma GCC unroll 16
  for (int i = 0; i < kPeakChains; ++i) acc[i] = V::set1(1.f + 0.001f * static_cast<float>(i));
  const uint32_t bits = 0x3a803a80u;
  float operand;
  std::memcpy(&operand, &bits, 4);
  const reg x = V::set1(operand);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kPeakChains; ++i) acc[i] = V::dot(x, x, acc[i]);
  }
  alignas(64) float lanes[V::width];
  reg sum = acc[0];
#pragma GCC unroll 16
  for (int i = 1; i < kPeakChains; ++i) sum = V::fma(acc[i], x, sum);
  V::store(lanes, sum);
  return lanes[0];
}

}  // namespace
}  // namespace qwenlong
