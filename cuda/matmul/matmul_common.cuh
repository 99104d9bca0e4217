// What the CUDA matmul kernels share (matmul.cu, matmul_wgmma.cu): the arguments by value, the order in which
// blocks walk the output tiles, and the epilogue that writes C.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/matmul/matmul.h"

namespace qwenlong {
namespace mm {

// Everything a kernel needs, by value. Pointers are untyped; strides are in elements.
struct Args {
  const void* a;
  const void* b;
  void* c;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;
  int64_t z0, stride_a, stride_b, stride_c;  // z0: batch index of blockIdx.z == 0
  float alpha, beta;
  int c_kind;      // 0: f32, 1: f16, 2: bf16
  bool c_pair_ok;  // two neighbouring C elements of an even column can be stored as one aligned vector
  int tiles_m, tiles_n;
};

enum : int { kCf32 = 0, kCf16 = 1, kCbf16 = 2 };

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces: tile order and the epilogue.

// Block index -> (tile_m, tile_n), walking groups of 8 tile rows column by column, so blocks that run together
// share A rows and B columns in L2.
constexpr int kGroupM = 8;
__host__ __device__ __forceinline__ void tile_of_block(int block, int tiles_m, int tiles_n, int* tile_m, int* tile_n) {
  const int tiles_in_group = kGroupM * tiles_n;
  const int group = block / tiles_in_group;
  const int first_m = group * kGroupM;
  const int group_rows = tiles_m - first_m < kGroupM ? tiles_m - first_m : kGroupM;
  const int in_group = block - group * tiles_in_group;
  *tile_m = first_m + in_group % group_rows;
  *tile_n = in_group / group_rows;
}

__device__ __forceinline__ float load_c(const void* c, int kind, int64_t i) {
  if (kind == kCf32) return static_cast<const float*>(c)[i];
  const unsigned short bits = static_cast<const unsigned short*>(c)[i];
  return kind == kCbf16 ? __bfloat162float(__ushort_as_bfloat16(bits)) : __half2float(__ushort_as_half(bits));
}
__device__ __forceinline__ unsigned short to_16(float y, int kind) {
  return kind == kCbf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(y)) : __half_as_ushort(__float2half_rn(y));
}

// Writes C(row, col) and C(row, col+1) (col even) of one batch's C from the f32 sums v0, v1:
// y = alpha * v + beta * C_old, with C_old read only when beta != 0. Columns >= N are skipped.
__device__ __forceinline__ void store_pair(const Args& p, void* c, int64_t row, int64_t col, float v0, float v1) {
  if (col >= p.n) return;
  const int64_t i = row * p.ldc + col;
  const bool both = col + 1 < p.n;
  float y0 = p.alpha * v0, y1 = p.alpha * v1;
  if (p.beta != 0.f) {
    y0 = fmaf(p.beta, load_c(c, p.c_kind, i), y0);
    if (both) y1 = fmaf(p.beta, load_c(c, p.c_kind, i + 1), y1);
  }
  if (p.c_kind == kCf32) {
    float* cf = static_cast<float*>(c);
    if (both && p.c_pair_ok) {
      *reinterpret_cast<float2*>(cf + i) = make_float2(y0, y1);
    } else {
      cf[i] = y0;
      if (both) cf[i + 1] = y1;
    }
  } else {
    unsigned short* ch = static_cast<unsigned short*>(c);
    if (both && p.c_pair_ok) {
      *reinterpret_cast<unsigned int*>(ch + i) = static_cast<unsigned int>(to_16(y0, p.c_kind)) |
                                                 (static_cast<unsigned int>(to_16(y1, p.c_kind)) << 16);
    } else {
      ch[i] = to_16(y0, p.c_kind);
      if (both) ch[i + 1] = to_16(y1, p.c_kind);
    }
  }
}

// Whether a pointer starts on 16 bytes (what 16-byte copies into shared memory need).
inline bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

// The Hopper kernel (matmul_wgmma.cu): launches and returns true where it applies and is chosen
// (QWENLONG_MATMUL_KERNEL), else returns false, launching nothing. `args` carries C and the epilogue's fields.
bool matmul_wgmma_cuda(const MatmulParams& p, const Args& args);

}  // namespace mm
}  // namespace qwenlong
