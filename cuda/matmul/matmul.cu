// matmul on the GPU: C_z = alpha * op(A_z) · op(B_z) + beta * C_z for every batch index z (see matmul.h).
//   op(A): (M, K)   op(B): (K, N)   C: (M, N) row-major, f32 or the inputs' dtype
// Two kernels:
//   - f16/bf16 inputs: tensor cores (mma.sync m16n8k16, f32 accumulate). Block tile 128x128x32, 8 warps of 64x32,
//     a 4-stage cp.async pipeline through XOR-swizzled shared memory read with ldmatrix. Each operand's tile keeps
//     the layout it has in global memory ("K-major" when K is the contiguous dimension, "MN-major" otherwise), so
//     every global read is a 16-byte copy along a contiguous row and ldmatrix (.trans for MN-major) builds the
//     fragments. Rows must be 16-byte aligned for cp.async; otherwise the same kernel fills shared memory with
//     checked 2-byte loads (slower, any stride or offset).
//   - f32 inputs: SIMT FFMA, block tile 128x128x16, 256 threads of 8x8 outputs, double-buffered shared memory with
//     the next tile prefetched into registers. No TF32: sums are plain f32 FMAs in k order.
// On Hopper, QWENLONG_MATMUL_KERNEL=wgmma sends f16/bf16 products to matmul_wgmma.cu's kernel first (TMA and warpgroup
// MMA; opt-in until it has run on a card).
// Edges: tiles are zero-filled past M, N and K, so any sizes work; C is written only inside (M, N). With beta == 0
// C is never read.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cstdint>
#include <string>

#include "cuda/common/cuda_util.h"
#include "cuda/matmul/matmul.h"
#include "cuda/matmul/matmul_common.cuh"
#include "cuda/matmul/matmul_ptx.cuh"

namespace qwenlong {

namespace {

using namespace mm;

// ---------------------------------------------------------------------------------------------------------------
// Tensor-core kernel (f16 / bf16 inputs).

constexpr int kBM = 128, kBN = 128, kBK = 32;  // block tile
constexpr int kStages = 4;                      // cp.async pipeline depth
constexpr int kThreads = 256;                   // 8 warps: 2 along M x 4 along N
constexpr int kWarpM = 64, kWarpN = 32;         // warp tile: 4 x 4 mma tiles of 16x8
constexpr int kTileElems = kBM * kBK;           // one operand's tile in one stage (kBN * kBK is the same)
constexpr int kSmemBytes = kStages * 2 * kTileElems * 2;  // 64 KiB
static_assert(kBM == kBN, "A and B stage tiles share one size");
static_assert(kBM == 2 * kWarpM && kBN == 4 * kWarpN, "8 warps cover the block tile");

// Shared-memory offset (in elements) of 16-byte chunk `chunk` of row `row` in a tile with COLS elements per row.
// The chunk index is XORed with bits of the row so that the 8 row addresses of one ldmatrix 8x8 matrix (8
// consecutive rows, one chunk column) fall in 8 different 16-byte bank groups:
//   COLS = 32 (K-major, 64-byte rows, two rows per 128 bytes): chunk ^ ((row >> 1) & 3)
//   COLS = 128 (MN-major, 256-byte rows): chunk ^ (row & 7)
template <int COLS>
__host__ __device__ __forceinline__ int swizzled(int row, int chunk) {
  static_assert(COLS == 32 || COLS == 128, "tile rows are 32 or 128 elements");
  if constexpr (COLS == 32) return row * 32 + ((chunk ^ ((row >> 1) & 3)) << 3);
  else return row * 128 + ((chunk ^ (row & 7)) << 3);
}

// One thread's walk over one operand, k tile by k tile. In every tile the thread owns the elements at rows
// row + i * rows_apart (i = 0, 1, ...) and columns col, col+1, ... of the stored matrix; one of the two is the k
// dimension (columns for a K-major operand, rows for an MN-major one) and moves on by the tile depth each step.
// row_left / col_left count the matrix's rows / columns from (row, col) on, so "inside" is a comparison with 0
// (32-bit: the launcher keeps M, N and K below 2^31 - 2^16).
template <typename T>
struct Cursor {
  const T* ptr;        // element (row, col) of the current k tile (may point outside the matrix; then unused)
  int64_t row_stride;  // elements between two of the thread's rows
  int row_left, col_left;

  __host__ __device__ __forceinline__ void init(const T* g, int64_t ld, int64_t row, int64_t col, int64_t rows,
                                       int64_t cols, int rows_apart) {
    ptr = g + row * ld + col;
    row_stride = ld * rows_apart;
    row_left = static_cast<int>(rows - row);
    col_left = static_cast<int>(cols - col);
  }
  // The next k tile, `depth` deep.
  __host__ __device__ __forceinline__ void advance(bool k_major, int depth, int64_t ld) {
    if (k_major) {
      ptr += depth;
      col_left -= depth;
    } else {
      ptr += depth * ld;
      row_left -= depth;
    }
  }
};

// Copies an operand's k tiles into shared tiles of ROWS x COLS elements, 16 bytes (8 elements) per chunk.
// Thread tid owns chunk tid % (COLS / 8) of rows tid / (COLS / 8) + i * kRowsApart, so consecutive threads take
// consecutive chunks of a row and a warp reads whole contiguous row segments. Outside the matrix the tile is zeros.
template <int ROWS, int COLS, bool ALIGNED>
struct TileCopy {
  static constexpr int kChunksPerRow = COLS / 8;
  static constexpr int kRowsApart = kThreads / kChunksPerRow;
  static constexpr int kCount = ROWS / kRowsApart;  // chunks per thread per tile
  // The swizzle depends on row bits below 8 only, so one thread's chunks sit kRowsApart * COLS elements apart.
  static_assert(kRowsApart % 8 == 0 && ROWS % kRowsApart == 0, "thread chunks share one swizzle");

  Cursor<uint16_t> cur;
  uint32_t dst;  // byte offset of the thread's first chunk inside a tile

  __host__ __device__ __forceinline__ void init(const uint16_t* g, int64_t ld, int64_t row0, int64_t rows, int64_t col0,
                                       int64_t cols, int tid) {
    const int row = tid / kChunksPerRow, chunk = tid % kChunksPerRow;
    cur.init(g, ld, row0 + row, col0 + chunk * 8, rows, cols, kRowsApart);
    dst = 2u * swizzled<COLS>(row, chunk);
  }

  // Chunk i of the thread: how many of its 8 elements lie inside the matrix, its byte offset in a tile, and where
  // it starts in global memory (meaningful only when valid(i) > 0).
  __host__ __device__ __forceinline__ int valid(int i) const {
    if (cur.row_left <= i * kRowsApart) return 0;
    return cur.col_left <= 0 ? 0 : cur.col_left >= 8 ? 8 : cur.col_left;
  }
  __host__ __device__ __forceinline__ uint32_t offset(int i) const {
    return dst + static_cast<uint32_t>(i * kRowsApart * COLS * 2);
  }
  __host__ __device__ __forceinline__ const uint16_t* src(int i) const { return cur.ptr + i * cur.row_stride; }

  // Fills the tile at shared address `tile` from the cursor's k tile. `g` is a valid address of the matrix, given to
  // cp.async for chunks that read nothing.
  __device__ __forceinline__ void copy(uint32_t tile, const uint16_t* g) const {
#pragma unroll
    for (int i = 0; i < kCount; ++i) {
      const int n = valid(i);
      if constexpr (ALIGNED) {
        ptx::cp_async_16(tile + offset(i), n > 0 ? src(i) : g, n * 2);
      } else {
        uint32_t w[4] = {0u, 0u, 0u, 0u};
        const uint16_t* from = src(i);
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (e < n) w[e >> 1] |= static_cast<uint32_t>(from[e]) << ((e & 1) * 16);
        ptx::st_shared_16(tile + offset(i), w[0], w[1], w[2], w[3]);
      }
    }
  }
};

// Per-lane ldmatrix addresses inside one stage, in bytes. Lane 8*j + r addresses row r of 8x8 matrix j; for A the
// matrices are (m, k) = (0,0), (8,0), (0,8), (8,8) of a 16x16 fragment, for B (n, k) = (0,0), (0,8), (8,0), (8,8) of
// two 8-wide n tiles (so one x4 load yields the b registers of two mma tiles). Fragment (kk, mi) of A is at
// a_kk[kk] + a_mi[mi], fragment pair (kk, nj) of B at b_kk[kk] + b_nj[nj]: moving 16 rows never changes the swizzle,
// so in a K-major tile mi (nj) adds a constant and kk picks the swizzled chunk, in an MN-major tile the other way.
template <bool A_KMAJOR, bool B_KMAJOR>
struct FragmentOffsets {
  uint32_t a_kk[2], a_mi[4], b_kk[2], b_nj[2];

  __host__ __device__ __forceinline__ void init(int lane, int warp_m, int warp_n) {
    const int mat = lane >> 3, mat_row = lane & 7;
    for (int kk = 0; kk < 2; ++kk) {
      const int ka = kk * 16 + (mat >> 1) * 8, kb = kk * 16 + (mat & 1) * 8;  // first k of the lane's matrix
      a_kk[kk] = A_KMAJOR ? 2u * swizzled<kBK>(warp_m * kWarpM + (mat & 1) * 8 + mat_row, ka / 8) : 2u * kk * 16 * kBM;
      b_kk[kk] = B_KMAJOR ? 2u * swizzled<kBK>(warp_n * kWarpN + (mat >> 1) * 8 + mat_row, kb / 8) : 2u * kk * 16 * kBN;
    }
    for (int mi = 0; mi < 4; ++mi) {
      const int m = warp_m * kWarpM + mi * 16 + (mat & 1) * 8;  // first m of the lane's matrix
      a_mi[mi] = A_KMAJOR ? 2u * mi * 16 * kBK : 2u * swizzled<kBM>((mat >> 1) * 8 + mat_row, m / 8);
    }
    for (int nj = 0; nj < 2; ++nj) {
      const int n = warp_n * kWarpN + nj * 16 + (mat >> 1) * 8;
      b_nj[nj] = B_KMAJOR ? 2u * nj * 16 * kBK : 2u * swizzled<kBN>((mat & 1) * 8 + mat_row, n / 8);
    }
  }
};

// Where accumulator acc[mi][ni][2h + e] of a lane sits in the block tile: row acc_row(..., mi, h), column
// acc_col(..., ni) + e. Lane 4*g + t holds rows g and g+8, columns 2t and 2t+1 of each 16x8 mma tile.
__host__ __device__ __forceinline__ int acc_row(int warp_m, int lane, int mi, int h) {
  return warp_m * kWarpM + mi * 16 + (lane >> 2) + h * 8;
}
__host__ __device__ __forceinline__ int acc_col(int warp_n, int lane, int ni) {
  return warp_n * kWarpN + ni * 8 + 2 * (lane & 3);
}

// A_KMAJOR: A stored (M, K) (not trans_a). B_KMAJOR: B stored (N, K) (trans_b). ALIGNED: every row of A and B
// starts on 16 bytes (cp.async path). BF16: bf16 inputs, else f16.
// Grid: x = tiles_m * tiles_n blocks (grouped order), z = batch index - p.z0.
template <bool A_KMAJOR, bool B_KMAJOR, bool ALIGNED, bool BF16>
__global__ void __launch_bounds__(kThreads, 2) matmul_mma_kernel(const Args p) {
  extern __shared__ __align__(128) uint16_t smem[];
  uint16_t* const smem_a = smem;                          // (kStages, kTileElems)
  uint16_t* const smem_b = smem + kStages * kTileElems;   // (kStages, kTileElems)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp >> 2, warp_n = warp & 3;  // warp tile origin: (warp_m * 64, warp_n * 32)

  int tile_m, tile_n;
  tile_of_block(blockIdx.x, p.tiles_m, p.tiles_n, &tile_m, &tile_n);
  const int64_t m0 = static_cast<int64_t>(tile_m) * kBM, n0 = static_cast<int64_t>(tile_n) * kBN;

  // 1. Per-lane ldmatrix addresses inside one stage.
  FragmentOffsets<A_KMAJOR, B_KMAJOR> off;
  off.init(lane, warp_m, warp_n);
  const uint32_t smem_a_addr = ptx::smem_addr(smem_a), smem_b_addr = ptx::smem_addr(smem_b);
  constexpr uint32_t kStageBytes = kTileElems * 2;

  const int num_k_tiles = static_cast<int>((p.k + kBK - 1) / kBK);

  const int64_t z = p.z0 + blockIdx.z;  // batch index
  const uint16_t* const a = static_cast<const uint16_t*>(p.a) + z * p.stride_a;
  const uint16_t* const b = static_cast<const uint16_t*>(p.b) + z * p.stride_b;

  // K-major tiles are (m or n, k) = (128, 32); MN-major ones (k, m or n) = (32, 128).
  TileCopy<A_KMAJOR ? kBM : kBK, A_KMAJOR ? kBK : kBM, ALIGNED> copy_a;
  TileCopy<B_KMAJOR ? kBN : kBK, B_KMAJOR ? kBK : kBN, ALIGNED> copy_b;
  if constexpr (A_KMAJOR) copy_a.init(a, p.lda, m0, p.m, 0, p.k, tid);
  else copy_a.init(a, p.lda, 0, p.k, m0, p.m, tid);
  if constexpr (B_KMAJOR) copy_b.init(b, p.ldb, n0, p.n, 0, p.k, tid);
  else copy_b.init(b, p.ldb, 0, p.k, n0, p.n, tid);

  // Fill pipeline stage `stage` with the next k tile of both operands (tiles are loaded in order 0, 1, ...).
  auto load_next = [&](int stage) {
    copy_a.copy(smem_a_addr + stage * kStageBytes, a);
    copy_b.copy(smem_b_addr + stage * kStageBytes, b);
    copy_a.cur.advance(A_KMAJOR, kBK, p.lda);
    copy_b.cur.advance(B_KMAJOR, kBK, p.ldb);
  };

  float acc[4][4][4];  // (mi, ni, fragment element): rows warp_m*64 + mi*16.., columns warp_n*32 + ni*8..
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.f;

  // 2. Prologue: start the first kStages - 1 k tiles (one commit group per tile, empty groups past the end so the
  //    group count stays in step with kt).
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_k_tiles) load_next(s);
    ptx::cp_async_commit();
  }

  // 3. Main loop. At iteration kt, groups 0..kt+kStages-2 have been committed; waiting until at most kStages-2
  //    are pending means tile kt has landed for this thread, and the barrier makes every thread's copies visible.
  //    The same barrier proves that all warps are done with stage (kt-1) % kStages, which is refilled next.
  for (int kt = 0; kt < num_k_tiles; ++kt) {
    ptx::cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < num_k_tiles) load_next(next % kStages);
    ptx::cp_async_commit();

    const int stage = kt % kStages;
    const uint32_t sa = smem_a_addr + stage * kStageBytes, sb = smem_b_addr + stage * kStageBytes;
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      uint32_t a_frag[4][4], b_frag[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        if constexpr (A_KMAJOR) ptx::ldmatrix_x4(a_frag[mi], sa + off.a_kk[kk] + off.a_mi[mi]);
        else ptx::ldmatrix_x4_trans(a_frag[mi], sa + off.a_kk[kk] + off.a_mi[mi]);
      }
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        uint32_t r[4];
        if constexpr (B_KMAJOR) ptx::ldmatrix_x4(r, sb + off.b_kk[kk] + off.b_nj[nj]);
        else ptx::ldmatrix_x4_trans(r, sb + off.b_kk[kk] + off.b_nj[nj]);
        b_frag[2 * nj][0] = r[0];
        b_frag[2 * nj][1] = r[1];
        b_frag[2 * nj + 1][0] = r[2];
        b_frag[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) ptx::mma_16816<BF16>(acc[mi][ni], a_frag[mi], b_frag[ni]);
    }
  }
  // Only empty commit groups can still be pending here, and the epilogue reads registers only.

  // 4. Epilogue.
  void* const c = static_cast<char*>(p.c) + z * p.stride_c * (p.c_kind == kCf32 ? 4 : 2);
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = m0 + acc_row(warp_m, lane, mi, h);
      if (row >= p.m) continue;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni)
        store_pair(p, c, row, n0 + acc_col(warp_n, lane, ni), acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// SIMT kernel (f32 inputs).

constexpr int kFM = 128, kFN = 128, kFK = 16;  // block tile
constexpr int kFPad = 4;                        // floats of padding per shared row (keeps float4 alignment)

// Thread (tx, ty) = (tid % 16, tid / 16) computes rows {ty*4 + i, 64 + ty*4 + i} x columns {tx*4 + j, 64 + tx*4 + j},
// i, j < 4: the split halves make a warp's shared reads of B one contiguous 256-byte run and of A a broadcast.
template <bool A_KMAJOR, bool B_KMAJOR>
__global__ void __launch_bounds__(kThreads) matmul_f32_kernel(const Args p) {
  __shared__ __align__(16) float smem_a[2][kFK][kFM + kFPad];  // (buffer, k, m)
  __shared__ __align__(16) float smem_b[2][kFK][kFN + kFPad];  // (buffer, k, n)
  constexpr int kPerThread = kFM * kFK / kThreads;             // 8 elements of each operand per thread per tile

  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  int tile_m, tile_n;
  tile_of_block(blockIdx.x, p.tiles_m, p.tiles_n, &tile_m, &tile_n);
  const int64_t m0 = static_cast<int64_t>(tile_m) * kFM, n0 = static_cast<int64_t>(tile_n) * kFN;
  const int num_k_tiles = static_cast<int>((p.k + kFK - 1) / kFK);

  // Thread tid owns 8 elements of each operand's tile. K-major operands: k = tid % 16 and rows (m or n)
  // tid / 16 + 16 i, so a warp reads two rows of 16 consecutive k; MN-major: m or n = tid % 128 and k = tid / 128 + 2 i,
  // so a warp reads 32 consecutive m or n.
  constexpr int kRowsApartK = kThreads / kFK, kRowsApartMN = kThreads / kFM;
  const int a_row = A_KMAJOR ? tid / kFK : tid / kFM, a_col = A_KMAJOR ? tid % kFK : tid % kFM;
  const int b_row = B_KMAJOR ? tid / kFK : tid / kFN, b_col = B_KMAJOR ? tid % kFK : tid % kFN;

  const int64_t z = p.z0 + blockIdx.z;  // batch index
  const float* const a = static_cast<const float*>(p.a) + z * p.stride_a;
  const float* const b = static_cast<const float*>(p.b) + z * p.stride_b;
  Cursor<float> cur_a, cur_b;
  if constexpr (A_KMAJOR) cur_a.init(a, p.lda, m0 + a_row, a_col, p.m, p.k, kRowsApartK);
  else cur_a.init(a, p.lda, a_row, m0 + a_col, p.k, p.m, kRowsApartMN);
  if constexpr (B_KMAJOR) cur_b.init(b, p.ldb, n0 + b_row, b_col, p.n, p.k, kRowsApartK);
  else cur_b.init(b, p.ldb, b_row, n0 + b_col, p.k, p.n, kRowsApartMN);
  float reg_a[kPerThread], reg_b[kPerThread];

  // 1. Global -> registers: the cursors' current k tile (zeros outside the matrices), then step the cursors.
  auto load_regs = [&]() {
    constexpr int kApartA = A_KMAJOR ? kRowsApartK : kRowsApartMN, kApartB = B_KMAJOR ? kRowsApartK : kRowsApartMN;
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const bool in_a = cur_a.col_left > 0 && cur_a.row_left > i * kApartA;
      reg_a[i] = in_a ? cur_a.ptr[i * cur_a.row_stride] : 0.f;
      const bool in_b = cur_b.col_left > 0 && cur_b.row_left > i * kApartB;
      reg_b[i] = in_b ? cur_b.ptr[i * cur_b.row_stride] : 0.f;
    }
    cur_a.advance(A_KMAJOR, kFK, p.lda);
    cur_b.advance(B_KMAJOR, kFK, p.ldb);
  };
  // 2. Registers -> shared buffer buf, as (k, m) and (k, n).
  auto store_smem = [&](int buf) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      if constexpr (A_KMAJOR) smem_a[buf][a_col][a_row + i * kRowsApartK] = reg_a[i];
      else smem_a[buf][a_row + i * kRowsApartMN][a_col] = reg_a[i];
      if constexpr (B_KMAJOR) smem_b[buf][b_col][b_row + i * kRowsApartK] = reg_b[i];
      else smem_b[buf][b_row + i * kRowsApartMN][b_col] = reg_b[i];
    }
  };

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  if (num_k_tiles > 0) {
    load_regs();
    store_smem(0);
  }
  __syncthreads();
  // 3. Main loop: fetch tile kt+1 into registers, multiply tile kt from shared memory, then park tile kt+1 in the
  //    other buffer. The barrier at the end orders both the reads of buffer kt%2 before its refill at kt+1 and
  //    the writes of buffer (kt+1)%2 before they are read.
  for (int kt = 0; kt < num_k_tiles; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < num_k_tiles) load_regs();
#pragma unroll
    for (int kq = 0; kq < kFK; ++kq) {
      const float4 a_lo = *reinterpret_cast<const float4*>(&smem_a[buf][kq][ty * 4]);
      const float4 a_hi = *reinterpret_cast<const float4*>(&smem_a[buf][kq][64 + ty * 4]);
      const float4 b_lo = *reinterpret_cast<const float4*>(&smem_b[buf][kq][tx * 4]);
      const float4 b_hi = *reinterpret_cast<const float4*>(&smem_b[buf][kq][64 + tx * 4]);
      const float av[8] = {a_lo.x, a_lo.y, a_lo.z, a_lo.w, a_hi.x, a_hi.y, a_hi.z, a_hi.w};
      const float bv[8] = {b_lo.x, b_lo.y, b_lo.z, b_lo.w, b_hi.x, b_hi.y, b_hi.z, b_hi.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    if (kt + 1 < num_k_tiles) store_smem(buf ^ 1);
    __syncthreads();
  }

  // 4. Epilogue.
  void* const c = static_cast<char*>(p.c) + z * p.stride_c * 4;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t row = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
    if (row >= p.m) continue;
#pragma unroll
    for (int j = 0; j < 8; j += 2) {
      const int64_t col = n0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4);
      store_pair(p, c, row, col, acc[i][j], acc[i][j + 1]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Launch.

// Grid: tiles along x (grouped order inside the kernel), the batch along z. gridDim.z stops at 65535, so larger
// batches take several launches, each starting at batch index args.z0.
constexpr int64_t kMaxGridZ = 65535;

template <typename Kernel>
void launch_grid(Kernel kernel, Args args, int64_t batch, int bm, int bn, int smem_bytes) {
  const int64_t tiles_m = (args.m + bm - 1) / bm, tiles_n = (args.n + bn - 1) / bn;
  if (tiles_m * tiles_n > INT_MAX)
    throw_range("matmul: " + std::to_string(args.m) + " x " + std::to_string(args.n) + " output is too large");
  args.tiles_m = static_cast<int>(tiles_m);
  args.tiles_n = static_cast<int>(tiles_n);
  for (int64_t z0 = 0; z0 < batch; z0 += kMaxGridZ) {
    args.z0 = z0;
    const int64_t nz = batch - z0 < kMaxGridZ ? batch - z0 : kMaxGridZ;
    const dim3 grid(static_cast<unsigned>(tiles_m * tiles_n), 1, static_cast<unsigned>(nz));
    kernel<<<grid, kThreads, smem_bytes, compute_stream()>>>(args);
  }
}

template <bool A_KMAJOR, bool B_KMAJOR, bool ALIGNED, bool BF16>
void launch_mma(const Args& args, int64_t batch) {
  auto kernel = matmul_mma_kernel<A_KMAJOR, B_KMAJOR, ALIGNED, BF16>;
  // More than 48 KiB of dynamic shared memory must be opted into, once per kernel.
  static const bool opted_in = [&] {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes), "matmul");
    return true;
  }();
  (void)opted_in;
  launch_grid(kernel, args, batch, kBM, kBN, kSmemBytes);
}

template <bool BF16>
void dispatch_mma(const Args& args, int64_t batch, bool a_kmajor, bool b_kmajor, bool aligned) {
  const int which = (a_kmajor ? 4 : 0) | (b_kmajor ? 2 : 0) | (aligned ? 1 : 0);
  switch (which) {
    case 0: launch_mma<false, false, false, BF16>(args, batch); break;
    case 1: launch_mma<false, false, true, BF16>(args, batch); break;
    case 2: launch_mma<false, true, false, BF16>(args, batch); break;
    case 3: launch_mma<false, true, true, BF16>(args, batch); break;
    case 4: launch_mma<true, false, false, BF16>(args, batch); break;
    case 5: launch_mma<true, false, true, BF16>(args, batch); break;
    case 6: launch_mma<true, true, false, BF16>(args, batch); break;
    default: launch_mma<true, true, true, BF16>(args, batch); break;
  }
}

template <bool A_KMAJOR, bool B_KMAJOR>
void launch_f32(const Args& args, int64_t batch) {
  launch_grid(matmul_f32_kernel<A_KMAJOR, B_KMAJOR>, args, batch, kFM, kFN, 0);
}

}  // namespace

void matmul_cuda(const MatmulParams& p) {
  if (p.ab_dtype != DType::f32 && p.ab_dtype != DType::f16 && p.ab_dtype != DType::bf16)
    throw_type(std::string("matmul: unsupported input dtype ") + dtype_name(p.ab_dtype));
  if (p.c_dtype != DType::f32 && p.c_dtype != p.ab_dtype)
    throw_type(std::string("matmul: output dtype ") + dtype_name(p.c_dtype) + " must be f32 or " +
               dtype_name(p.ab_dtype));
  if (p.m < 0 || p.n < 0 || p.k < 0 || p.batch < 0) throw_range("matmul: negative size");
  constexpr int64_t kMaxDim = (int64_t(1) << 31) - (int64_t(1) << 16);  // tile edges stay inside int
  if (p.m > kMaxDim || p.n > kMaxDim || p.k > kMaxDim)
    throw_range("matmul: M, N and K must be below 2^31 - 2^16 on CUDA");
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  NvtxRange range("qwenlong.matmul");

  Args args{};
  args.a = p.a;
  args.b = p.b;
  args.c = p.c;
  args.m = p.m;
  args.n = p.n;
  args.k = p.k;
  args.lda = p.lda;
  args.ldb = p.ldb;
  args.ldc = p.ldc;
  args.stride_a = p.stride_a;
  args.stride_b = p.stride_b;
  args.stride_c = p.stride_c;
  args.alpha = p.alpha;
  args.beta = p.beta;
  args.c_kind = p.c_dtype == DType::f32 ? kCf32 : p.c_dtype == DType::f16 ? kCf16 : kCbf16;
  const int64_t c_size = static_cast<int64_t>(dtype_size(p.c_dtype));
  args.c_pair_ok = p.ldc % 2 == 0 && p.stride_c % 2 == 0 && reinterpret_cast<uintptr_t>(p.c) % (2 * c_size) == 0;

  const bool a_kmajor = !p.trans_a, b_kmajor = p.trans_b;
  if (p.ab_dtype == DType::f32) {
    if (a_kmajor && b_kmajor) launch_f32<true, true>(args, p.batch);
    else if (a_kmajor) launch_f32<true, false>(args, p.batch);
    else if (b_kmajor) launch_f32<false, true>(args, p.batch);
    else launch_f32<false, false>(args, p.batch);
  } else {
    // cp.async moves 16 bytes (8 elements) at a time: every stored row, and every batch's matrix, of A and B
    // must start on 16 bytes.
    const bool aligned = aligned16(p.a) && aligned16(p.b) && p.lda % 8 == 0 && p.ldb % 8 == 0 &&
                         p.stride_a % 8 == 0 && p.stride_b % 8 == 0;
    if (matmul_wgmma_cuda(p, args)) return;
    if (p.ab_dtype == DType::bf16) dispatch_mma<true>(args, p.batch, a_kmajor, b_kmajor, aligned);
    else dispatch_mma<false>(args, p.batch, a_kmajor, b_kmajor, aligned);
  }
  check_launch("matmul");
}

}  // namespace qwenlong
