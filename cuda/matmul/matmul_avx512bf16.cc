// matmul of bf16 operands with AVX512-BF16: vdpbf16ps multiplies 16 pairs of bf16 by 16 pairs and adds both
// products to 16 f32 accumulators, twice the multiply-adds of an f32 FMA per instruction. The panels hold bf16 pairs
// (two consecutive k of one row or column in a 32-bit slot, matmul_cpu.h), so the register tile is the AVX-512
// kernel's 14 × 32 with half as many k steps: 28 accumulators, 2 B vectors of 16 pairs, one broadcast pair of A.
// Blocks keep the AVX-512 kernel's bytes: kc = 2048 elements (1024 pairs: a B micro-panel is again 128 KiB, an A
// block 224 × 2048 × 2 bytes = 896 KiB). The widening AVX-512 kernel ran bf16 products at the speed of f32 ones
// (201-224 GFLOP/s on 2 Zen 4 cores); this one runs them at 401-441, where PyTorch's bf16 matmul (oneDNN) ran at
// 375-418 (bench/results/dense-gemm.md).
#include <immintrin.h>

#include <cstring>

#include "cuda/matmul/matmul_avx512_lanes.h"
#include "cuda/matmul/matmul_x86.h"

namespace qwenlong {

namespace {

// The AVX-512 lanes with a pair dot product for the k step: c += a.lo · b.lo + a.hi · b.hi per lane (bf16 products, f32
// sums). A packed slot moves as bits (broadcast, load), never converted.
struct Bf16Pairs : Avx512 {
  static reg dot(reg a, reg b, reg c) { return _mm512_dpbf16_ps(c, (__m512bh)a, (__m512bh)b); }
};

constexpr int kMr = 14, kNv = 2;

// The first n (0..16) 16-bit lanes on.
inline __mmask16 first16(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << std::max<int64_t>(n, 0)) - 1); }

// x contiguous (sx == 1): the pair of x is element x of rows k and k + 1, interleaved: 16 x at a time, 8 slots of k at
// a time across every panel (as the f32 packer does, so each source row is read front to back).
void pack_pairs_x_contiguous(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  const uint16_t* data = static_cast<const uint16_t*>(src.data) + x0 + k0 * src.sk;
  const int64_t slots = (kc + 1) / 2, panel_slots = r * slots;
  for (int64_t s_lo = 0; s_lo < slots; s_lo += 8) {
    const int64_t s_hi = std::min<int64_t>(slots, s_lo + 8);
    float* panel = out;
    for (int64_t panel_x = 0; panel_x < nx; panel_x += r, panel += panel_slots) {
      for (int64_t s = s_lo; s < s_hi; ++s) {
        const uint16_t* even = data + 2 * s * src.sk;
        const bool has_odd = 2 * s + 1 < kc;
        for (int g = 0; g < r; g += 16) {
          const int64_t x = panel_x + g;
          const __mmask16 valid = first16(nx - x);
          const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(valid, even + x));
          const __m512i hi = has_odd ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(valid, even + src.sk + x)) : _mm512_setzero_si512();
          const __m512i pair = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
          float* dst = panel + s * r + g;
          if (r - g >= 16) _mm512_storeu_si512(dst, pair);
          else _mm512_mask_storeu_epi32(dst, first16(r - g), pair);
        }
      }
    }
  }
}

// k contiguous (sk == 1): a pair is one 32-bit word of the row, so 8 rows × 8 pairs go through the f32 transpose.
void pack_pairs_k_contiguous(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  const uint16_t* data = static_cast<const uint16_t*>(src.data);
  const int64_t slots = (kc + 1) / 2;
  for (int64_t panel_x = 0; panel_x < nx; panel_x += r, out += r * slots) {
    const int64_t valid = std::min<int64_t>(r, nx - panel_x);
    for (int g = 0; g < r; g += 8) {
      const int rows = static_cast<int>(std::clamp<int64_t>(valid - g, 0, 8));
      const int lanes = std::min(8, r - g);
      const uint16_t* row0 = data + (x0 + panel_x + g) * src.sx + k0;
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t kn = std::min<int64_t>(16, kc - k);  // elements; an odd count leaves the last high half zero
        prefetch_next_rows(row0, src.sx * 2, k * 2);
        __m256 v[8];
        for (int q = 0; q < 8; ++q)
          v[q] = q < rows ? _mm256_castsi256_ps(_mm256_maskz_loadu_epi16(first16(kn), row0 + q * src.sx + k)) : _mm256_setzero_ps();
        transpose8(v);
        const int64_t s0 = k / 2, sn = (kn + 1) / 2;
        for (int q = 0; q < sn; ++q) store_first(out + (s0 + q) * r + g, v[q], lanes);
      }
    }
  }
}

// Any strides: one slot at a time.
void pack_pairs_strided(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  const uint16_t* data = static_cast<const uint16_t*>(src.data);
  const int64_t slots = (kc + 1) / 2;
  for (int64_t panel_x = 0; panel_x < nx; panel_x += r, out += r * slots) {
    for (int64_t s = 0; s < slots; ++s) {
      for (int i = 0; i < r; ++i) {
        uint32_t word = 0;
        if (panel_x + i < nx) {
          const uint16_t* e = data + (x0 + panel_x + i) * src.sx + (k0 + 2 * s) * src.sk;
          word = e[0];
          if (2 * s + 1 < kc) word |= uint32_t(e[src.sk]) << 16;
        }
        std::memcpy(out + s * r + i, &word, 4);
      }
    }
  }
}

void pack_pairs(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  if (src.sx == 1) pack_pairs_x_contiguous(src, x0, nx, k0, kc, r, out);
  else if (src.sk == 1) pack_pairs_k_contiguous(src, x0, nx, k0, kc, r, out);
  else pack_pairs_strided(src, x0, nx, k0, kc, r, out);
}

}  // namespace

const GemmKernel& gemm_kernel_avx512bf16() {
  static const GemmKernel kernel{kMr,       kNv * Bf16Pairs::width, 224, 2048, 4096, pack_pairs, micro_tile<Bf16Pairs, kMr, kNv>,
                                   fma_rounds<Bf16Pairs>, 4 * kPeakChains * Bf16Pairs::width, micro_few<Bf16Pairs, kMr, kNv>, 2,
                                   finish_half_vector};
  return kernel;
}

}  // namespace qwenlong
