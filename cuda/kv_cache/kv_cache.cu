// The paged KV cache on CUDA: slot writes, block copies and paged attention (kv_cache.h states the algorithm; the
// CPU twin in kv_cache_kernels.inc runs the same partitions, key order, online-softmax update and merge).
//
// Paged attention, head dims that are multiples of 8 up to 256 (paged_tiled_kernel): one thread block of 128 threads
// per work item (partition, sequence x kv head, query tile), query rows in passes of 8 (a row = one query token x one
// query head of the kv head's group). Keys in tiles of 32, online softmax once per tile and row:
//   staging: the K and V rows of the next two tiles are copied to shared memory by cp.async (16-byte pieces, the
//            block table read per key) while this tile is used, so that each block keeps tens of KiB in flight;
//   scores:  four lanes per key, each 16-byte shared loads of its quarter of the key's row, q from shared memory,
//            reduced by two shuffles; the tile's scores go to shared memory;
//   softmax: one warp per row, a key per lane (max, exp2, sum), the rescale factor to shared memory;
//   P V:     a thread owns 8 consecutive dims of a V row for a slice of the tile's keys and keeps every row's partial
//            accumulator in registers; the slices are summed in shared memory at the end of a pass.
// Other head dims (paged_general_kernel): a warp per row, dims across lanes, K/V blocks staged in shared memory.
// bf16/f16 with head dims that are multiples of 8 go to the tensor-core kernel of kv_paged_mma.cu first; these SIMT
// kernels take f32, the other head dims, and every case under QWENLONG_PAGED_KERNEL=tiled.
// Partitions of a sequence run in parallel (flash-decoding) and a second kernel merges them.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/kv_cache/kv_cache.h"
#include "cuda/kv_cache/kv_cache_cuda.cuh"

namespace qwenlong {

namespace {

constexpr int kThreads = 128;         // 4 warps
constexpr int kFastRows = 8;          // query rows per pass of the tiled kernel
constexpr int kKeyLanes = 4;          // lanes per key in the scores phase
constexpr int kTileK = 128 / kKeyLanes; // keys per tile (one online-softmax step): a key per 4 lanes, a lane per key
static_assert(kTileK == 32, "the softmax gives each lane of a warp one key of the tile");
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerPass = 4 * kRowsPerWarp;
constexpr int kDimsPerLane = 8;       // head_dim <= 256
constexpr float kLog2e = 1.4426950408889634f;

template <typename T>
__global__ void kv_write_kernel(const KvWriteParams p) {
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  T* pk = static_cast<T*>(p.pool_k);
  T* pv = static_cast<T*>(p.pool_v);
  const int64_t D = p.head_dim, total = p.n * p.heads_kv * D;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = idx % D, h = (idx / D) % p.heads_kv, i = idx / (D * p.heads_kv);
    const int64_t slot = p.slots[i], blk = slot / p.block_size, off = slot % p.block_size;
    const int64_t dst = ((blk * p.heads_kv + h) * p.block_size + off) * D + d;
    pk[dst] = k[idx];
    pv[dst] = v[idx];
  }
}

template <typename T, int BS>
__global__ void __launch_bounds__(kThreads) paged_general_kernel(const PagedAttentionParams p) {
  extern __shared__ __align__(16) float smem[];
  const int D = static_cast<int>(p.head_dim);
  float* ks = smem;           // (BS, D)
  float* vs = smem + BS * D;  // (BS, D)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  const int64_t split = blockIdx.x, b = blockIdx.y / p.heads_kv, kvh = blockIdx.y % p.heads_kv;
  const int64_t q0 = p.cu_seqlens_q[b], len_q = p.cu_seqlens_q[b + 1] - q0, len_k = p.context_lens[b];
  const int64_t t0 = int64_t(blockIdx.z) * p.block_q;
  if (t0 >= len_q) return;
  const int64_t k_begin = split * p.split_size;
  if (split > 0 && k_begin >= len_k) return;
  const int64_t nt = min(p.block_q, len_q - t0), G = p.heads_q / p.heads_kv, R = nt * G, shift = len_k - len_q;
  int64_t k_end = min(len_k, k_begin + p.split_size);
  if (p.causal) k_end = min(k_end, t0 + nt + shift);
  const T* q = static_cast<const T*>(p.q);
  const T* pool_k = static_cast<const T*>(p.pool_k);
  const T* pool_v = static_cast<const T*>(p.pool_v);
  const int32_t* table = p.block_tables + b * p.table_stride;
  const float sl = p.scale * kLog2e;

  for (int64_t rb = 0; rb < R; rb += kRowsPerPass) {
    float qr[kRowsPerWarp][kDimsPerLane], acc[kRowsPerWarp][kDimsPerLane], m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int64_t r = rb + warp * kRowsPerWarp + i;
      m[i] = -INFINITY;
      l[i] = 0.f;
#pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e) {
        const int d = lane + 32 * e;
        acc[i][e] = 0.f;
        qr[i][e] = (r < R && d < D) ? to_f32(q[((q0 + t0 + r / G) * p.heads_q + kvh * G + r % G) * D + d]) * sl : 0.f;
      }
    }
    for (int64_t j0 = k_begin; j0 < k_end; j0 += BS) {
      const int nk = static_cast<int>(min(int64_t(BS), k_end - j0));
      const int64_t base = (int64_t(table[j0 / BS]) * p.heads_kv + kvh) * BS * D;
      __syncthreads();  // the previous block's readers are done
      for (int idx = threadIdx.x; idx < nk * D; idx += kThreads) {
        ks[idx] = to_f32(pool_k[base + idx]);
        vs[idx] = to_f32(pool_v[base + idx]);
      }
      __syncthreads();
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const int64_t r = rb + warp * kRowsPerWarp + i;
        if (r >= R) continue;  // warp-uniform
        const int64_t qi = t0 + r / G;
        const int visible = p.causal ? static_cast<int>(max(int64_t(0), min(int64_t(nk), qi + shift - j0 + 1))) : nk;
        if (visible <= 0) continue;  // warp-uniform
        float s[BS];
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < BS; ++j) {
          if (j < visible) {
            float part = 0.f;
#pragma unroll
            for (int e = 0; e < kDimsPerLane; ++e) {
              const int d = lane + 32 * e;
              if (d < D) part = fmaf(qr[i][e], ks[j * D + d], part);
            }
            s[j] = warp_sum(part);
            mx = fmaxf(mx, s[j]);
          } else {
            s[j] = -INFINITY;
          }
        }
        const float m_new = fmaxf(m[i], mx);
        const float alpha = m[i] == -INFINITY ? 0.f : exp2f(m[i] - m_new);
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < BS; ++j) {
          s[j] = j < visible ? exp2f(s[j] - m_new) : 0.f;
          sum += s[j];
        }
        l[i] = l[i] * alpha + sum;
        m[i] = m_new;
#pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e) {
          const int d = lane + 32 * e;
          if (d >= D) continue;
          float a = acc[i][e] * alpha;
#pragma unroll
          for (int j = 0; j < BS; ++j)
            if (j < visible) a = fmaf(s[j], vs[j * D + d], a);
          acc[i][e] = a;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int64_t r = rb + warp * kRowsPerWarp + i;
      if (r >= R) continue;
#pragma unroll
      for (int e = 0; e < kDimsPerLane; ++e)
        if (lane + 32 * e < D) paged::store_row<T>(p, split, q0 + t0 + r / G, kvh * G + r % G, lane + 32 * e, m[i], l[i], acc[i][e]);
    }
  }
}

// Shared memory of the tiled kernel. K and V tiles of kTileK keys are staged by cp.async, kStages tiles deep, so
// the loads of the next tiles are in flight while this one is used. Staged rows are padded to 64 bytes mod 128: a
// 16-byte shared load is served a quarter-warp at a time, and a quarter-warp of the scores phase reads 64 bytes
// of two consecutive keys, which then fall on disjoint banks. The f32 part holds the query rows
// (pre-scaled), a tile's scores, m, l and alpha; at the end of a pass the slices' accumulators (kThreads x kFastRows
// x 8 floats, whatever the head dim) reuse the whole buffer.
constexpr int kStages = 3;
constexpr int kReduceFloats = kThreads * kFastRows * 8;
__host__ __device__ constexpr int staged_row_bytes(int D, int elem) { return D * elem + (192 - (D * elem) % 128) % 128; }
__host__ __device__ constexpr int tiled_smem_bytes(int D, int elem) {
  return kStages * 2 * kTileK * staged_row_bytes(D, elem) + (kFastRows * (D + kTileK) + 4 * kFastRows) * 4 > kReduceFloats * 4
             ? kStages * 2 * kTileK * staged_row_bytes(D, elem) + (kFastRows * (D + kTileK) + 4 * kFastRows) * 4
             : kReduceFloats * 4;
}

// A 16-byte global-to-shared copy that does not wait (sm_80+; older cards copy through registers).
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src));
#else
  *reinterpret_cast<uint4*>(dst) = __ldg(reinterpret_cast<const uint4*>(src));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// Eight consecutive elements of shared memory as f32.
template <typename T>
__device__ __forceinline__ void smem8(const T* x, float* out) {
  static_assert(sizeof(T) == 2, "f16 / bf16");
  union Pack { uint4 raw; T h[8]; } pack;
  pack.raw = *reinterpret_cast<const uint4*>(x);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = to_f32(pack.h[i]);
}
__device__ __forceinline__ void smem8(const float* x, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(x), b = *reinterpret_cast<const float4*>(x + 4);
  out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
  out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
}

template <typename T, int BS>
__global__ void __launch_bounds__(kThreads) paged_tiled_kernel(const PagedAttentionParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int D = static_cast<int>(p.head_dim);
  const int row_elems = staged_row_bytes(D, sizeof(T)) / static_cast<int>(sizeof(T));  // padded staged row
  T* stage_base = reinterpret_cast<T*>(smem_raw);  // kStages x (K tile, V tile), each kTileK x row_elems
  const int tile_elems = kTileK * row_elems;
  float* qs = reinterpret_cast<float*>(smem_raw + kStages * 2 * tile_elems * sizeof(T));  // (kFastRows, D)
  float* ss = qs + kFastRows * D;      // (kFastRows, kTileK): scores, then probabilities
  float* ms = ss + kFastRows * kTileK; // (kFastRows) running max
  float* ls = ms + kFastRows;          // (kFastRows) running sum
  float* as = ls + kFastRows;          // (kFastRows) this tile's rescale factor
  float* red = reinterpret_cast<float*>(smem_raw);  // (slices, kFastRows, D) at the end of a pass
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  const int64_t split = blockIdx.x, b = blockIdx.y / p.heads_kv, kvh = blockIdx.y % p.heads_kv;
  const int64_t q0 = p.cu_seqlens_q[b], len_q = p.cu_seqlens_q[b + 1] - q0, len_k = p.context_lens[b];
  const int64_t k_begin = split * p.split_size;
  if (split > 0 && k_begin >= len_k) return;
  const int64_t G = p.heads_q / p.heads_kv, shift = len_k - len_q;
  const T* q = static_cast<const T*>(p.q);
  const T* pool_k = static_cast<const T*>(p.pool_k);
  const T* pool_v = static_cast<const T*>(p.pool_v);
  const int32_t* table = p.block_tables + b * p.table_stride;
  const float sl = p.scale * kLog2e;
  const int chunks = D / 8, slices = kThreads / chunks;  // P V: thread = (slice, chunk of 8 dims)
  const int chunk = tid % chunks, slice = tid / chunks;
  const bool pv_active = slice < slices;
  const int key = tid / kKeyLanes, key_lane = tid % kKeyLanes;  // scores: a key per 4 lanes, kTileK keys per step
  const int64_t q_tiles = (p.max_seqlen_q + p.block_q - 1) / p.block_q;
  // Stage the K and V rows of keys [j0, j0 + nk) into stage st: 16-byte pieces spread over the block.
  auto stage_tile = [&](int64_t j0, int nk, int st) {
    T* ks = stage_base + st * 2 * tile_elems;
    T* vs = ks + tile_elems;
    const int pieces = nk * chunks;
    for (int i = tid; i < pieces; i += kThreads) {
      const int kk = i / chunks, c = i % chunks;
      const int64_t j = j0 + kk;
      const int64_t off = ((int64_t(table[j / BS]) * p.heads_kv + kvh) * BS + j % BS) * D + c * 8;
      cp_async16(ks + kk * row_elems + c * 8, pool_k + off);
      if (sizeof(T) == 4) cp_async16(ks + kk * row_elems + c * 8 + 4, pool_k + off + 4);
      cp_async16(vs + kk * row_elems + c * 8, pool_v + off);
      if (sizeof(T) == 4) cp_async16(vs + kk * row_elems + c * 8 + 4, pool_v + off + 4);
    }
  };

  // Query tiles: blockIdx.z, then every gridDim.z-th (a grid dimension holds at most 65535).
  for (int64_t qt = blockIdx.z; qt < q_tiles; qt += gridDim.z) {
    const int64_t t0 = qt * p.block_q;
    if (t0 >= len_q) break;  // block-uniform
    const int64_t nt = min(p.block_q, len_q - t0), R = nt * G;
    int64_t k_end = min(len_k, k_begin + p.split_size);
    if (p.causal) k_end = min(k_end, t0 + nt + shift);
    const int64_t tiles = k_end > k_begin ? (k_end - k_begin + kTileK - 1) / kTileK : 0;
    auto tile_keys = [&](int64_t t) { return static_cast<int>(min(int64_t(kTileK), k_end - (k_begin + t * kTileK))); };

    for (int64_t rb = 0; rb < R; rb += kFastRows) {
      const int rows = static_cast<int>(min(int64_t(kFastRows), R - rb));
      __syncthreads();  // the previous pass's readers of the shared buffers are done
      // The first kStages - 1 tiles start loading while the query rows are read (one commit group per tile, empty
      // groups past the end, so that "all but the newest kStages - 2 groups have landed" means "tile t has landed").
#pragma unroll
      for (int s = 0; s < kStages - 1; ++s) {
        if (s < tiles) stage_tile(k_begin + s * kTileK, tile_keys(s), s);
        cp_async_commit();
      }
      for (int idx = tid; idx < kFastRows * D; idx += kThreads) {
        const int r = idx / D, d = idx % D;
        const int64_t rr = rb + r;
        qs[idx] = r < rows ? to_f32(q[((q0 + t0 + rr / G) * p.heads_q + kvh * G + rr % G) * D + d]) * sl : 0.f;
      }
      if (tid < kFastRows) {
        ms[tid] = -INFINITY;
        ls[tid] = 0.f;
      }
      float acc[kFastRows][8];
#pragma unroll
      for (int r = 0; r < kFastRows; ++r)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[r][e] = 0.f;
      // The last key each row sees (bottom-right causal alignment), or every key.
      auto last_key = [&](int r) { return p.causal ? t0 + (rb + r) / G + shift : k_end - 1; };

      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t j0 = k_begin + t * kTileK;
        const int nk = tile_keys(t);
        // Tile t + kStages - 1 goes to the stage that tile t - 1 used (everyone finished it at the last barrier).
        if (t + kStages - 1 < tiles) stage_tile(j0 + (kStages - 1) * kTileK, tile_keys(t + kStages - 1), (t + kStages - 1) % kStages);
        cp_async_commit();
        cp_async_wait<kStages - 1>();
        __syncthreads();  // tile t is in shared memory for everyone (and, at t = 0, q, m and l are written)
        const T* ks = stage_base + (t % kStages) * 2 * tile_elems;
        const T* vs = ks + tile_elems;
        // Scores: four lanes per key, each a quarter of the row in 8-element pieces; two shuffles sum the quarters.
        {
          const bool valid = key < nk;
          float part[kFastRows];
#pragma unroll
          for (int r = 0; r < kFastRows; ++r) part[r] = 0.f;
          if (valid) {
            const T* krow = ks + key * row_elems;
#pragma unroll
            for (int step = 0; step < 256 / (kKeyLanes * 8); ++step) {
              const int d0 = key_lane * 8 + step * kKeyLanes * 8;
              if (d0 >= D) break;
              float kv[8];
              smem8(krow + d0, kv);
#pragma unroll
              for (int r = 0; r < kFastRows; ++r) {
                if (r < rows) {
                  const float4 qa = *reinterpret_cast<const float4*>(qs + r * D + d0);
                  const float4 qb = *reinterpret_cast<const float4*>(qs + r * D + d0 + 4);
                  float x = part[r];
                  x = fmaf(qa.x, kv[0], x); x = fmaf(qa.y, kv[1], x); x = fmaf(qa.z, kv[2], x); x = fmaf(qa.w, kv[3], x);
                  x = fmaf(qb.x, kv[4], x); x = fmaf(qb.y, kv[5], x); x = fmaf(qb.z, kv[6], x); x = fmaf(qb.w, kv[7], x);
                  part[r] = x;
                }
              }
            }
          }
#pragma unroll
          for (int r = 0; r < kFastRows; ++r) {
            if (r < rows) {  // block-uniform: every lane of the warp takes part
              part[r] += __shfl_xor_sync(0xffffffffu, part[r], 1);
              part[r] += __shfl_xor_sync(0xffffffffu, part[r], 2);
            }
          }
          if (valid && key_lane == 0) {
#pragma unroll
            for (int r = 0; r < kFastRows; ++r)
              if (r < rows) ss[r * kTileK + key] = j0 + key <= last_key(r) ? part[r] : -INFINITY;
          }
        }
        __syncthreads();
        // Online softmax: a warp per row (kTileK = 32: a key per lane).
        for (int r = warp; r < rows; r += kThreads / 32) {
          const float x = lane < nk ? ss[r * kTileK + lane] : -INFINITY;
          const float mx = warp_max(x);
          const float m_old = ms[r], m_new = fmaxf(m_old, mx);
          const float e = m_new == -INFINITY || lane >= nk ? 0.f : exp2f(x - m_new);
          if (lane < nk) ss[r * kTileK + lane] = e;
          const float sum = warp_sum(e);
          __syncwarp();  // every lane has read ms[r] before lane 0 replaces it
          if (lane == 0) {
            const float alpha = m_old == -INFINITY ? 0.f : exp2f(m_old - m_new);
            ls[r] = ls[r] * alpha + sum;
            ms[r] = m_new;
            as[r] = alpha;
          }
        }
        __syncthreads();
        // P V over this thread's slice of the tile's keys.
        if (pv_active) {
#pragma unroll
          for (int r = 0; r < kFastRows; ++r) {
            if (r < rows) {
              const float alpha = as[r];
#pragma unroll
              for (int e = 0; e < 8; ++e) acc[r][e] *= alpha;
            }
          }
#pragma unroll 4
          for (int kk = slice; kk < nk; kk += slices) {
            float v[8];
            smem8(vs + kk * row_elems + chunk * 8, v);
#pragma unroll
            for (int r = 0; r < kFastRows; ++r) {
              if (r < rows) {
                const float pr = ss[r * kTileK + kk];
#pragma unroll
                for (int e = 0; e < 8; ++e) acc[r][e] = fmaf(pr, v[e], acc[r][e]);
              }
            }
          }
        }
        __syncthreads();  // the next tile overwrites the scores, and the stage after next reuses this one
      }
      cp_async_wait<0>();  // only empty groups can remain; nothing may land in the buffers red reuses
      __syncthreads();      // (no tiles: q, m and l were written without a barrier in the loop)

      // Sum the slices' accumulators, then write the rows (or their partition's m, l, acc).
      float m_fin[kFastRows], l_fin[kFastRows];
#pragma unroll
      for (int r = 0; r < kFastRows; ++r) {
        m_fin[r] = ms[r];
        l_fin[r] = ls[r];
      }
      __syncthreads();  // everyone has read m and l before red overwrites them
      if (pv_active) {
#pragma unroll
        for (int r = 0; r < kFastRows; ++r)
#pragma unroll
          for (int e = 0; e < 8; ++e) red[(slice * kFastRows + r) * D + chunk * 8 + e] = acc[r][e];
      }
      __syncthreads();
      for (int idx = tid; idx < rows * D; idx += kThreads) {
        const int r = idx / D, d = idx % D;
        float a = 0.f;
        for (int sidx = 0; sidx < slices; ++sidx) a += red[(sidx * kFastRows + r) * D + d];
        float mr = 0.f, lr = 0.f;
#pragma unroll
        for (int i = 0; i < kFastRows; ++i)
          if (i == r) {
            mr = m_fin[i];
            lr = l_fin[i];
          }
        const int64_t rr = rb + r;
        paged::store_row<T>(p, split, q0 + t0 + rr / G, kvh * G + rr % G, d, mr, lr, a);
      }
    }
  }
}

// One block per (query row, query head): out = sum_s exp2(m_s - M) acc_s / sum_s exp2(m_s - M) l_s.
template <typename T>
__global__ void paged_merge_kernel(const PagedAttentionParams p) {
  const int64_t row = blockIdx.x, h = blockIdx.y, D = p.head_dim;
  int64_t lo = 0, hi = p.batch - 1;  // the sequence holding row: the last b with cu[b] <= row
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (p.cu_seqlens_q[mid] <= row) lo = mid;
    else hi = mid - 1;
  }
  const int64_t splits = max(int64_t(1), (int64_t(p.context_lens[lo]) + p.split_size - 1) / p.split_size);
  float M = -INFINITY;
  for (int64_t s = 0; s < splits; ++s) M = fmaxf(M, p.ws_ml[2 * ((s * p.total_q + row) * p.heads_q + h)]);
  T* out = static_cast<T*>(p.out) + (row * p.heads_q + h) * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    if (M == -INFINITY) {
      out[d] = from_f32<T>(0.f);
      continue;
    }
    float L = 0.f, a = 0.f;
    for (int64_t s = 0; s < splits; ++s) {
      const int64_t slot = (s * p.total_q + row) * p.heads_q + h;
      const float ms = p.ws_ml[2 * slot];
      if (ms == -INFINITY) continue;
      const float w = exp2f(ms - M);
      L = fmaf(w, p.ws_ml[2 * slot + 1], L);
      a = fmaf(w, p.ws_acc[slot * D + d], a);
    }
    out[d] = from_f32<T>(a / L);
  }
}

// The tiled kernel's shared memory: opted in once per instantiation up to what the card allows a block (sm_90 and
// sm_80 take every head dim of the 2-byte types; sm_86/89 stop at 99 KiB) with the carveout set to favour shared
// memory, so that three blocks fit an SM. Returns the bytes opted in.
template <typename T, int BS>
int tiled_smem_limit() {
  static const int limit = paged::opt_in_smem(paged_tiled_kernel<T, BS>, tiled_smem_bytes(256, sizeof(T)));
  return limit;
}

template <typename T, int BS>
void launch_simt(PagedAttentionParams p) {
  const int64_t G = p.heads_q / p.heads_kv;
  const int tiled_smem = p.head_dim % 8 == 0 && p.head_dim <= 256 ? tiled_smem_bytes(static_cast<int>(p.head_dim), sizeof(T)) : 0;
  // Head dims the tiled kernel does not take, or whose staged tiles do not fit this card, go to the general kernel.
  const bool tiled = tiled_smem > 0 && tiled_smem <= tiled_smem_limit<T, BS>();
  const int rows = tiled ? kFastRows : kRowsPerPass;
  p.block_q = G >= rows ? 1 : rows / G;
  const int64_t q_tiles = (p.max_seqlen_q + p.block_q - 1) / p.block_q;
  if (p.batch * p.heads_kv > 65535 || (!tiled && q_tiles > 65535) || p.num_splits > (int64_t(1) << 31) - 1)
    throw_range("ops.pagedAttention: too many sequences x kv heads or query tiles for one CUDA launch");
  // The tiled kernel loops over query tiles past 65535.
  const dim3 grid(static_cast<unsigned>(p.num_splits), static_cast<unsigned>(p.batch * p.heads_kv), static_cast<unsigned>(std::min<int64_t>(q_tiles, 65535)));
  if (tiled) {
    paged_tiled_kernel<T, BS><<<grid, kThreads, tiled_smem, compute_stream()>>>(p);
  } else {
    const int smem = static_cast<int>(2 * BS * p.head_dim * sizeof(float));
    auto kernel = paged_general_kernel<T, BS>;
    static const bool opted_in = [&] {
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 2 * BS * 256 * int(sizeof(float))), "ops.pagedAttention");
      return true;
    }();
    (void)opted_in;
    kernel<<<grid, kThreads, smem, compute_stream()>>>(p);
  }
  check_launch("ops.pagedAttention");
}

// The tensor-core kernel (kv_paged_mma.cu) where it applies, else the SIMT kernels; then the partitions' merge.
template <typename T, int BS>
void launch_paged(const PagedAttentionParams& p) {
  if (!paged_attention_mma_cuda(p)) launch_simt<T, BS>(p);
  if (p.num_splits > 1) {
    if (p.heads_q > 65535) throw_range("ops.pagedAttention: too many query heads for one CUDA launch");
    paged_merge_kernel<T><<<dim3(static_cast<unsigned>(p.total_q), static_cast<unsigned>(p.heads_q)), 128, 0, compute_stream()>>>(p);
    check_launch("ops.pagedAttention");
  }
}

}  // namespace

void kv_write_cuda(const KvWriteParams& p) {
  NvtxRange range("qwenlong.kvWrite");
  dispatch_float_cuda(p.dtype, "kvCache.write", [&](auto tag) {
    using T = decltype(tag);
    kv_write_kernel<T><<<blocks_for(p.n * p.heads_kv * p.head_dim, 256), 256, 0, compute_stream()>>>(p);
  });
  check_launch("kvCache.write");
}

void kv_copy_blocks_cuda(const KvCopyParams& p) {
  NvtxRange range("qwenlong.kvCopyBlocks");
  const size_t bytes = static_cast<size_t>(p.block_elems) * dtype_size(p.dtype);
  auto* pool = static_cast<char*>(p.pool);
  for (int64_t i = 0; i < p.count; ++i)
    check_cuda(cudaMemcpyAsync(pool + size_t(p.pairs[2 * i + 1]) * bytes, pool + size_t(p.pairs[2 * i]) * bytes, bytes,
                               cudaMemcpyDeviceToDevice, compute_stream()),
               "kvCache.copyBlocks");
}

void paged_attention_cuda(const PagedAttentionParams& p) {
  if (p.head_dim == 0 || p.total_q == 0) return;  // nothing to write
  if (p.head_dim > 32 * kDimsPerLane) throw_range("ops.pagedAttention: head dimension above 256 on CUDA");
  if (p.block_size != 8 && p.block_size != 16 && p.block_size != 32)
    throw_range("ops.pagedAttention: CUDA needs a block size of 8, 16 or 32, not " + std::to_string(p.block_size));
  NvtxRange range("qwenlong.pagedAttention");
  dispatch_float_cuda(p.dtype, "ops.pagedAttention", [&](auto tag) {
    using T = decltype(tag);
    if (p.block_size == 8) launch_paged<T, 8>(p);
    else if (p.block_size == 16) launch_paged<T, 16>(p);
    else launch_paged<T, 32>(p);
  });
}

}  // namespace qwenlong
