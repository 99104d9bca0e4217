// Paged attention on tensor cores (bf16/f16, head dims that are multiples of 8 up to 256): the kernel decode and
// chunked prefill take by default on sm_80 and newer. kv_cache.cu keeps the SIMT kernels for f32, other head dims,
// and as the fallback (QWENLONG_PAGED_KERNEL=tiled).
//
// One block of 4 warps per work item (partition, sequence x kv head, query tile), query rows in passes of 16 (a row
// = one query token x one query head of the kv head's group: decode with G = 4 fills 4 of the 16, which costs
// tensor-core work the memory-bound decode has to spare). The warps split the partition's keys: warp w takes the
// 16-key tiles w, w + 4, w + 8, ... and streams them through its own ring of shared-memory stages with cp.async, so
// a warp only ever waits for its own copies (no block-wide barrier per tile) and the four warps keep 4 x (stages - 1)
// tiles in flight per block. Per tile, as in attention forward: S = q k^T by mma.sync m16n8k16 with q's fragments
// held in registers for the whole pass, the tile's keys past the partition or (causal) past a row's last key masked,
// online softmax in the log2 domain per row, and O += P V with P rounded to the cache's type as the A operand
// straight from the S accumulators (f32 accumulation). At the end of a pass the four warps' (m, l, O) are merged in
// shared memory exactly as partitions are merged: M = max m_w, out = sum_w 2^(m_w - M) O_w / sum_w 2^(m_w - M) l_w.
// So the result is the algorithm of kv_cache.h with each partition cut once more into four interleaved parts; only
// where the rounding happens differs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/attention/attention_common.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/kv_cache/kv_cache.h"
#include "cuda/kv_cache/kv_cache_cuda.cuh"

namespace qwenlong {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16;  // query rows per pass: the m of m16n8k16
constexpr int kKeys = 16;  // keys per tile: the k of P V's m16n8k16

// Shared memory, for a padded head dim kD (staged rows of kD + 8 elements: the 16 bytes of padding shift
// consecutive rows by four banks, so ldmatrix's eight row addresses hit disjoint banks):
//   rings: per warp, `stages` x (K tile, V tile) of kKeys rows, 2-byte elements;
//   merge (reuses the rings at the end of a pass): per warp, O (kRows x (kD + 8) f32: the float2 stores of a
//   fragment row fall on distinct banks) and (m, l) per row;
//   q: kRows rows of kD + 8 elements, after the larger of the two.
template <int kD>
__host__ __device__ constexpr int ring_bytes(int stages) { return kWarps * stages * 2 * kKeys * (kD + 8) * 2; }
template <int kD>
__host__ __device__ constexpr int merge_bytes() { return kWarps * kRows * (kD + 8 + 2) * 4; }
template <int kD>
__host__ __device__ constexpr int smem_bytes(int stages) {
  return (ring_bytes<kD>(stages) > merge_bytes<kD>() ? ring_bytes<kD>(stages) : merge_bytes<kD>()) + kRows * (kD + 8) * 2;
}

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) paged_mma_kernel(const PagedAttentionParams p, int stages, int bs_shift) {
  constexpr int kS = kD + 8;             // staged row stride (elements)
  constexpr int kTile = kKeys * kS;      // one staged K or V tile (elements)
  constexpr int kChunks = kD / 8;        // 16-byte pieces per staged row
  constexpr int kOS = kD + 8;            // merge row stride (floats)
  // q's fragments stay in registers for the pass up to head dim 128; at 256 they would leave no room for O's 128
  // accumulators, so they are read from sQ (written once a pass) at each k-step instead.
  constexpr bool kQInRegs = kD <= 128;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  T* ring = reinterpret_cast<T*>(smem_raw) + warp * stages * 2 * kTile;
  const int rb_bytes = kWarps * stages * 2 * kTile * 2;
  T* sQ = reinterpret_cast<T*>(smem_raw + (rb_bytes > merge_bytes<kD>() ? rb_bytes : merge_bytes<kD>()));
  float* sO = reinterpret_cast<float*>(smem_raw);  // (warps, kRows, kOS) at the end of a pass
  float* sML = sO + kWarps * kRows * kOS;          // (warps, kRows, 2)

  const int D = static_cast<int>(p.head_dim), chunks = D / 8;
  const int64_t split = blockIdx.x, b = blockIdx.y / p.heads_kv, kvh = blockIdx.y % p.heads_kv;
  const int64_t q0 = p.cu_seqlens_q[b], len_q = p.cu_seqlens_q[b + 1] - q0, len_k = p.context_lens[b];
  const int64_t k_begin = split * p.split_size;
  if (split > 0 && k_begin >= len_k) return;
  const int64_t G = p.heads_q / p.heads_kv, shift = len_k - len_q;
  const T* q = static_cast<const T*>(p.q);
  const T* pool_k = static_cast<const T*>(p.pool_k);
  const T* pool_v = static_cast<const T*>(p.pool_v);
  const int32_t* table = p.block_tables + b * p.table_stride;
  const int bs_mask = (1 << bs_shift) - 1;
  const int64_t head_part = int64_t(D) << bs_shift;         // elements of one kv head's part of a block
  const int64_t block_elems = p.heads_kv * head_part;        // elements of one block (every kv head)
  const int64_t q_tiles = (p.max_seqlen_q + p.block_q - 1) / p.block_q;

  // Copies the K and V rows of keys [j0, j0 + nk) into this warp's stage `slot`; rows past nk and columns past D
  // are zero-filled (a zero key scores 0 and is masked; a zero value row adds nothing, never NaN).
  auto stage_tile = [&](int64_t j0, int nk, int slot) {
    T* sk = ring + slot * 2 * kTile;
    T* sv = sk + kTile;
#pragma unroll
    for (int i = lane; i < kKeys * kChunks; i += 32) {
      const int kk = i / kChunks, c = i % kChunks;
      const bool valid = kk < nk && c < chunks;
      int64_t off = 0;
      if (valid) {
        const int64_t j = j0 + kk;
        off = int64_t(table[j >> bs_shift]) * block_elems + kvh * head_part + int64_t(j & bs_mask) * D + c * 8;
      }
      attn::cp_async16(sk + kk * kS + c * 8, pool_k + off, valid);
      attn::cp_async16(sv + kk * kS + c * 8, pool_v + off, valid);
    }
  };
  auto wait_all_but_newest = [&]() {  // "all but the newest stages - 1 groups have landed"
    if (stages >= 3) attn::cp_async_wait<2>();
    else attn::cp_async_wait<1>();
  };

  for (int64_t qt = blockIdx.z; qt < q_tiles; qt += gridDim.z) {
    const int64_t t0 = qt * p.block_q;
    if (t0 >= len_q) break;  // block-uniform
    const int64_t nt = min(p.block_q, len_q - t0), R = nt * G;
    int64_t k_end = min(len_k, k_begin + p.split_size);
    if (p.causal) k_end = min(k_end, t0 + nt + shift);
    const int tiles = k_end > k_begin ? static_cast<int>((k_end - k_begin + kKeys - 1) / kKeys) : 0;
    const int mine = tiles > warp ? (tiles - warp + kWarps - 1) / kWarps : 0;  // this warp's tiles
    auto tile_start = [&](int i) { return k_begin + int64_t(warp + i * kWarps) * kKeys; };
    auto tile_keys = [&](int i) { return static_cast<int>(min(int64_t(kKeys), k_end - tile_start(i))); };

    for (int64_t rb = 0; rb < R; rb += kRows) {
      const int rows = static_cast<int>(min(int64_t(kRows), R - rb));
      __syncthreads();  // the previous pass's readers of sQ and of the merge buffers are done
      // This pass's query rows (zero rows past R, zero columns past D), then the first stages - 1 tiles of each
      // warp: one commit group for q, one per tile (empty past the end).
      for (int idx = threadIdx.x; idx < kRows * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = idx % kChunks;
        const bool valid = r < rows && c < chunks;
        const int64_t rr = rb + r;
        const T* src = valid ? q + ((q0 + t0 + rr / G) * p.heads_q + kvh * G + rr % G) * D + c * 8 : q;
        attn::cp_async16(sQ + r * kS + c * 8, src, valid);
      }
      attn::cp_async_commit();
      for (int s = 0; s < stages - 1; ++s) {
        if (s < mine) stage_tile(tile_start(s), tile_keys(s), s);
        attn::cp_async_commit();
      }
      wait_all_but_newest();  // the q group has landed
      __syncthreads();        // for every thread
      uint32_t qf[kQInRegs ? kD / 16 : 1][4];
      if constexpr (kQInRegs) {
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) attn::ldmatrix_x4(qf[ks], sQ + (lane & 15) * kS + ks * 16 + (lane >> 4) * 8);
      }

      float o[kD / 8][4];
#pragma unroll
      for (int n = 0; n < kD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
      float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8; l: this lane's part
      // The last key rows g and g + 8 see (bottom-right causal), and the smallest over the pass (its first row).
      int64_t last[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) last[r] = p.causal ? t0 + (rb + g + 8 * r) / G + shift : k_end - 1;
      const int64_t min_last = p.causal ? t0 + rb / G + shift : k_end - 1;

      int slot = 0, fill = stages - 1;
      for (int i = 0; i < mine; ++i) {
        // Tile i + stages - 1 goes to the slot tile i - 1 used (every lane finished it at the last __syncwarp).
        if (i + stages - 1 < mine) stage_tile(tile_start(i + stages - 1), tile_keys(i + stages - 1), fill);
        attn::cp_async_commit();
        wait_all_but_newest();  // tile i has landed (this lane's copies)
        __syncwarp();           // and every lane's
        const T* cK = ring + slot * 2 * kTile;
        const T* cV = cK + kTile;
        const int64_t j0 = tile_start(i);

        // S = q k^T: 16 rows x 16 keys, two n8 tiles.
        float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) {
          uint32_t qa[4], kb[4];
          if constexpr (kQInRegs) {
            qa[0] = qf[ks][0], qa[1] = qf[ks][1], qa[2] = qf[ks][2], qa[3] = qf[ks][3];
          } else {
            attn::ldmatrix_x4(qa, sQ + (lane & 15) * kS + ks * 16 + (lane >> 4) * 8);
          }
          attn::ldmatrix_x4(kb, cK + ((lane & 7) + (lane >> 4) * 8) * kS + ks * 16 + ((lane >> 3) & 1) * 8);
          attn::mma16816<T>(sc[0], qa, kb[0], kb[1]);
          attn::mma16816<T>(sc[1], qa, kb[2], kb[3]);
        }
        // Log2 domain; keys past the partition's end or a row's last key are masked.
        const bool edge = j0 + kKeys > k_end || j0 + kKeys - 1 > min_last;
#pragma unroll
        for (int n = 0; n < 2; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float x = sc[n][e] * p.scale * attn::kLog2e;
            if (edge) {
              const int64_t j = j0 + n * 8 + 2 * t4 + (e & 1);
              if (j >= k_end || j > last[e >> 1]) x = -INFINITY;
            }
            sc[n][e] = x;
          }
        }
        // Online softmax per row (the 4 lanes of a row hold its 16 scores).
        attn::online_softmax(sc, m, l, o);
        // O += P V: P (16 x 16 keys) as the A operand, V's rows through ldmatrix.trans.
        uint32_t pa[4];
        pa[0] = attn::pack2<T>(sc[0][0], sc[0][1]);
        pa[1] = attn::pack2<T>(sc[0][2], sc[0][3]);
        pa[2] = attn::pack2<T>(sc[1][0], sc[1][1]);
        pa[3] = attn::pack2<T>(sc[1][2], sc[1][3]);
#pragma unroll
        for (int dn = 0; dn < kD / 16; ++dn) {
          uint32_t vb[4];
          attn::ldmatrix_x4_trans(vb, cV + ((lane & 7) + ((lane >> 3) & 1) * 8) * kS + dn * 16 + (lane >> 4) * 8);
          attn::mma16816<T>(o[2 * dn], pa, vb[0], vb[1]);
          attn::mma16816<T>(o[2 * dn + 1], pa, vb[2], vb[3]);
        }
        __syncwarp();  // every lane has read this slot before it is refilled
        slot = slot + 1 == stages ? 0 : slot + 1;
        fill = fill + 1 == stages ? 0 : fill + 1;
      }
      attn::cp_async_wait<0>();  // only empty groups can remain; nothing may land in what the merge reuses
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
      }
      __syncthreads();  // every warp is done with its ring: the merge buffers overwrite them
      float* wO = sO + warp * kRows * kOS;
#pragma unroll
      for (int n = 0; n < kD / 8; ++n) {
        *reinterpret_cast<float2*>(wO + g * kOS + n * 8 + 2 * t4) = make_float2(o[n][0], o[n][1]);
        *reinterpret_cast<float2*>(wO + (g + 8) * kOS + n * 8 + 2 * t4) = make_float2(o[n][2], o[n][3]);
      }
      if (t4 == 0) {
        sML[(warp * kRows + g) * 2] = m[0];
        sML[(warp * kRows + g) * 2 + 1] = l[0];
        sML[(warp * kRows + g + 8) * 2] = m[1];
        sML[(warp * kRows + g + 8) * 2 + 1] = l[1];
      }
      __syncthreads();
      for (int idx = threadIdx.x; idx < rows * D; idx += kThreads) {
        const int r = idx / D, d = idx % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sML[(w * kRows + r) * 2]);
        float L = 0.f, a = 0.f;
        if (M != -INFINITY) {
#pragma unroll
          for (int w = 0; w < kWarps; ++w) {
            const float mw = sML[(w * kRows + r) * 2];
            if (mw == -INFINITY) continue;
            const float s = exp2f(mw - M);
            L = fmaf(s, sML[(w * kRows + r) * 2 + 1], L);
            a = fmaf(s, sO[(w * kRows + r) * kOS + d], a);
          }
        }
        const int64_t rr = rb + r;
        paged::store_row<T>(p, split, q0 + t0 + rr / G, kvh * G + rr % G, d, M, L, a);
      }
    }
  }
}

// The kernel's shared-memory limit, opted in once per instantiation: what three stages need, or what the card allows
// a block (sm_86/89: 99 KiB), with the carveout set to favour shared memory.
template <typename T, int kD>
int smem_limit() {
  static const int limit = paged::opt_in_smem(paged_mma_kernel<T, kD>, smem_bytes<kD>(3));
  return limit;
}

// Stages per warp: three where they cost no resident block against two (the occupancy calculator weighs shared
// memory and registers: on sm_90, two blocks either way up to head dim 128, one at 256), else two; `forced` (2 or 3)
// overrides it for timing, falling back to two where three do not fit a block.
template <typename T, int kD>
bool launch(PagedAttentionParams p, int forced) {
  const int limit = smem_limit<T, kD>();
  static const int best = [&] {
    if (smem_bytes<kD>(3) > limit) return 2;
    int with2 = 0, with3 = 0;
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&with2, paged_mma_kernel<T, kD>, kThreads, smem_bytes<kD>(2)), "ops.pagedAttention");
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&with3, paged_mma_kernel<T, kD>, kThreads, smem_bytes<kD>(3)), "ops.pagedAttention");
    return with3 >= with2 ? 3 : 2;
  }();
  int stages = forced ? forced : best;
  if (smem_bytes<kD>(stages) > limit) stages = 2;
  if (smem_bytes<kD>(stages) > limit) return false;
  const int64_t G = p.heads_q / p.heads_kv;
  p.block_q = G >= kRows ? 1 : kRows / G;
  const int64_t q_tiles = (p.max_seqlen_q + p.block_q - 1) / p.block_q;
  const dim3 grid(static_cast<unsigned>(p.num_splits), static_cast<unsigned>(p.batch * p.heads_kv), static_cast<unsigned>(std::min<int64_t>(q_tiles, 65535)));
  const int bs_shift = p.block_size == 8 ? 3 : p.block_size == 16 ? 4 : 5;
  paged_mma_kernel<T, kD><<<grid, kThreads, smem_bytes<kD>(stages), compute_stream()>>>(p, stages, bs_shift);
  check_launch("ops.pagedAttention");
  return true;
}

}  // namespace

bool paged_attention_mma_cuda(const PagedAttentionParams& p) {
  // QWENLONG_PAGED_KERNEL: unset or "auto" (this kernel where it applies), "mma2" / "mma3" (two / three stages per
  // warp; "mma3" runs two where three do not fit a block), or "tiled" (the SIMT kernels): a switch for timing the
  // kernels against each other on one card. Other values mean "auto".
  const char* choice = std::getenv("QWENLONG_PAGED_KERNEL");
  if (choice && std::strcmp(choice, "tiled") == 0) return false;
  const int stages = !choice ? 0 : std::strcmp(choice, "mma2") == 0 ? 2 : std::strcmp(choice, "mma3") == 0 ? 3 : 0;
  if (p.dtype != DType::bf16 && p.dtype != DType::f16) return false;
  if (p.head_dim % 8 != 0 || p.head_dim > 256) return false;
  if (!attn::aligned16(p.q) || !attn::aligned16(p.pool_k) || !attn::aligned16(p.pool_v)) return false;
  if (p.block_size != 8 && p.block_size != 16 && p.block_size != 32) return false;
  if (p.batch * p.heads_kv > 65535 || p.num_splits > (int64_t(1) << 31) - 1) return false;  // the caller reports it
  auto by_dim = [&](auto tag) {
    using T = decltype(tag);
    if (p.head_dim <= 64) return launch<T, 64>(p, stages);
    if (p.head_dim <= 128) return launch<T, 128>(p, stages);
    return launch<T, 256>(p, stages);
  };
  return p.dtype == DType::bf16 ? by_dim(__nv_bfloat16{}) : by_dim(__half{});
}

}  // namespace qwenlong
