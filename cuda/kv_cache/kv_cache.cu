// The paged KV cache on CUDA: slot writes, block copies and paged attention (kv_cache.h states the algorithm; the
// CPU twin in kv_cache_kernels.inc runs the same partitions, key order, online-softmax update and merge).
//
// Paged attention, head dims that are multiples of 8 up to 256 (paged_tiled_kernel): one thread block of 128 threads
// per work item (partition, sequence x kv head, query tile), query rows in passes of 8 (a row = one query token x one
// query head of the kv head's group). Keys in tiles of 128, online softmax once per tile and row:
//   scores: four lanes per key, each lane 16-byte loads of its quarter of the key's row (the four lanes read 64
//           contiguous bytes), q from shared memory, reduced by two shuffles; the tile's scores go to shared memory;
//   softmax: one warp per row over the tile's scores (max, exp2, sum), the rescale factor to shared memory;
//   P V:    a thread owns 8 consecutive dims (a 16-byte load of a V row) for a slice of the tile's keys and keeps
//           every row's partial accumulator in registers; the slices are summed in shared memory at the end.
// Other head dims (paged_general_kernel): a warp per row, dims across lanes, K/V blocks staged in shared memory.
// Partitions of a sequence run in parallel (flash-decoding) and a second kernel merges them.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/kv_cache/kv_cache.h"

namespace qwenlong {

namespace {

constexpr int kThreads = 128;         // 4 warps
constexpr int kFastRows = 8;          // query rows per pass of the tiled kernel
constexpr int kTileK = 128;           // keys per tile (one online-softmax step)
constexpr int kKeyLanes = 4;          // lanes per key in the scores phase
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
      const int64_t row = q0 + t0 + r / G, h = kvh * G + r % G;
      if (p.num_splits == 1) {
        T* out = static_cast<T*>(p.out) + (row * p.heads_q + h) * D;
        const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
#pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e)
          if (lane + 32 * e < D) out[lane + 32 * e] = from_f32<T>(acc[i][e] * inv);
      } else {
        const int64_t slot = (split * p.total_q + row) * p.heads_q + h;
        if (lane == 0) {
          p.ws_ml[2 * slot] = m[i];
          p.ws_ml[2 * slot + 1] = l[i];
        }
#pragma unroll
        for (int e = 0; e < kDimsPerLane; ++e)
          if (lane + 32 * e < D) p.ws_acc[slot * D + lane + 32 * e] = acc[i][e];
      }
    }
  }
}

// Eight consecutive elements as f32: one 16-byte load for the 2-byte types, two for f32.
template <typename T>
__device__ __forceinline__ void load8(const T* x, float* out) {
  static_assert(sizeof(T) == 2, "f16 / bf16");
  union Pack { uint4 raw; T h[8]; } pack;
  pack.raw = __ldg(reinterpret_cast<const uint4*>(x));
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = to_f32(pack.h[i]);
}
__device__ __forceinline__ void load8(const float* x, float* out) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(x)), b = __ldg(reinterpret_cast<const float4*>(x + 4));
  out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
  out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
}

// Shared memory of the tiled kernel, in floats: the larger of (q rows + tile scores + m, l, alpha) and the slices'
// accumulators summed at the end of a pass (kThreads x kFastRows x 8, whatever the head dim).
constexpr int kTiledSmemFloats = kThreads * kFastRows * 8;

template <typename T, int BS>
__global__ void __launch_bounds__(kThreads) paged_tiled_kernel(const PagedAttentionParams p) {
  extern __shared__ __align__(16) float smem[];
  const int D = static_cast<int>(p.head_dim);
  float* qs = smem;                    // (kFastRows, D), pre-scaled by scale * log2(e)
  float* ss = qs + kFastRows * D;      // (kFastRows, kTileK): scores, then probabilities
  float* ms = ss + kFastRows * kTileK; // (kFastRows) running max
  float* ls = ms + kFastRows;          // (kFastRows) running sum
  float* as = ls + kFastRows;          // (kFastRows) this tile's rescale factor
  float* red = smem;                   // (slices, kFastRows, D) at the end of a pass
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
  const int key_group = tid / kKeyLanes, key_lane = tid % kKeyLanes;  // scores: 32 keys per step
  const int64_t q_tiles = (p.max_seqlen_q + p.block_q - 1) / p.block_q;

  // Query tiles: blockIdx.z, then every gridDim.z-th (a grid dimension holds at most 65535).
  for (int64_t qt = blockIdx.z; qt < q_tiles; qt += gridDim.z) {
    const int64_t t0 = qt * p.block_q;
    if (t0 >= len_q) break;  // block-uniform
    const int64_t nt = min(p.block_q, len_q - t0), R = nt * G;
    int64_t k_end = min(len_k, k_begin + p.split_size);
    if (p.causal) k_end = min(k_end, t0 + nt + shift);

    for (int64_t rb = 0; rb < R; rb += kFastRows) {
      const int rows = static_cast<int>(min(int64_t(kFastRows), R - rb));
      __syncthreads();  // the previous pass's readers of the shared buffers are done
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
      __syncthreads();

      for (int64_t j0 = k_begin; j0 < k_end; j0 += kTileK) {
        const int nk = static_cast<int>(min(int64_t(kTileK), k_end - j0));
        // Scores: warp-uniform steps of 32 keys (every lane takes part in the shuffles).
  #pragma unroll 1
        for (int base = 0; base < nk; base += kThreads / kKeyLanes) {
          const int kk = base + key_group;
          const bool valid = kk < nk;
          const int64_t j = j0 + kk;
          float part[kFastRows];
  #pragma unroll
          for (int r = 0; r < kFastRows; ++r) part[r] = 0.f;
          if (valid) {
            const T* krow = pool_k + ((int64_t(table[j / BS]) * p.heads_kv + kvh) * BS + j % BS) * D;
            // At most 8 steps (D <= 256), unrolled so that each lane's K loads are in flight together.
  #pragma unroll
            for (int step = 0; step < 256 / (kKeyLanes * 8); ++step) {
              const int d0 = key_lane * 8 + step * kKeyLanes * 8;
              if (d0 >= D) break;
              float kv[8];
              load8(krow + d0, kv);
  #pragma unroll
              for (int r = 0; r < kFastRows; ++r) {
                if (r < rows) {
                  const float4 qa = *reinterpret_cast<const float4*>(qs + r * D + d0);
                  const float4 qb = *reinterpret_cast<const float4*>(qs + r * D + d0 + 4);
                  float t = part[r];
                  t = fmaf(qa.x, kv[0], t); t = fmaf(qa.y, kv[1], t); t = fmaf(qa.z, kv[2], t); t = fmaf(qa.w, kv[3], t);
                  t = fmaf(qb.x, kv[4], t); t = fmaf(qb.y, kv[5], t); t = fmaf(qb.z, kv[6], t); t = fmaf(qb.w, kv[7], t);
                  part[r] = t;
                }
              }
            }
          }
  #pragma unroll
          for (int r = 0; r < kFastRows; ++r) {
            part[r] += __shfl_xor_sync(0xffffffffu, part[r], 1);
            part[r] += __shfl_xor_sync(0xffffffffu, part[r], 2);
          }
          if (valid && key_lane == 0) {
  #pragma unroll
            for (int r = 0; r < kFastRows; ++r)
              if (r < rows) ss[r * kTileK + kk] = j <= last_key(r) ? part[r] : -INFINITY;
          }
        }
        __syncthreads();
        // Online softmax: a warp per row.
        for (int r = warp; r < rows; r += kThreads / 32) {
          float mx = -INFINITY;
          for (int kk = lane; kk < nk; kk += 32) mx = fmaxf(mx, ss[r * kTileK + kk]);
          mx = warp_max(mx);
          const float m_old = ms[r], m_new = fmaxf(m_old, mx);
          float sum = 0.f;
          for (int kk = lane; kk < nk; kk += 32) {
            const float e = m_new == -INFINITY ? 0.f : exp2f(ss[r * kTileK + kk] - m_new);
            ss[r * kTileK + kk] = e;
            sum += e;
          }
          sum = warp_sum(sum);
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
            const float alpha = r < rows ? as[r] : 1.f;
  #pragma unroll
            for (int e = 0; e < 8; ++e) acc[r][e] *= alpha;
          }
  #pragma unroll 4
          for (int kk = slice; kk < nk; kk += slices) {
            const int64_t j = j0 + kk;
            float v[8];
            load8(pool_v + ((int64_t(table[j / BS]) * p.heads_kv + kvh) * BS + j % BS) * D + chunk * 8, v);
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
        __syncthreads();  // the next tile overwrites the scores
      }

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
        const int64_t rr = rb + r, row = q0 + t0 + rr / G, h = kvh * G + rr % G;
        if (p.num_splits == 1) {
          static_cast<T*>(p.out)[(row * p.heads_q + h) * D + d] = from_f32<T>(lr > 0.f ? a / lr : 0.f);
        } else {
          const int64_t slot = (split * p.total_q + row) * p.heads_q + h;
          if (d == 0) {
            p.ws_ml[2 * slot] = mr;
            p.ws_ml[2 * slot + 1] = lr;
          }
          p.ws_acc[slot * D + d] = a;
        }
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

template <typename T, int BS>
void launch_paged(PagedAttentionParams p) {
  const int64_t G = p.heads_q / p.heads_kv;
  const bool tiled = p.head_dim % 8 == 0 && p.head_dim <= 256;
  const int rows = tiled ? kFastRows : kRowsPerPass;
  p.block_q = G >= rows ? 1 : rows / G;
  const int64_t q_tiles = (p.max_seqlen_q + p.block_q - 1) / p.block_q;
  if (p.batch * p.heads_kv > 65535 || (!tiled && q_tiles > 65535) || p.num_splits > (int64_t(1) << 31) - 1)
    throw_range("ops.pagedAttention: too many sequences x kv heads or query tiles for one CUDA launch");
  // The tiled kernel loops over query tiles past 65535.
  const dim3 grid(static_cast<unsigned>(p.num_splits), static_cast<unsigned>(p.batch * p.heads_kv), static_cast<unsigned>(std::min<int64_t>(q_tiles, 65535)));
  if (tiled) {
    static_assert(kFastRows * (256 + kTileK + 3) <= kTiledSmemFloats, "the tiled kernel's buffers fit the reduction's");
    paged_tiled_kernel<T, BS><<<grid, kThreads, kTiledSmemFloats * sizeof(float), compute_stream()>>>(p);
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
