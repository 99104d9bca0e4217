// The paged KV cache on CUDA: slot writes, block copies and paged attention (kv_cache.h states the algorithm; the
// CPU twin in kv_cache_kernels.inc runs the same partitions, block order, per-block softmax update and merge).
//
// Paged attention: one thread block per work item (partition, sequence x kv head, query tile); 4 warps, each owning
// up to 4 rows (a row = one query token x one query head of the kv head's group), so a tile holds 16 rows and every
// K/V block is staged once in shared memory (as f32) for all of them. A row's dot products are split across the
// warp's lanes (lane owns dims lane, lane + 32, ...) and reduced by shuffles; its m, l and accumulator live in the
// lanes' registers. Partitions of a sequence run in parallel (flash-decoding) and a second kernel merges them.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/kv_cache/kv_cache.h"

namespace qwenlong {

namespace {

constexpr int kThreads = 128;         // 4 warps
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
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(const PagedAttentionParams p) {
  extern __shared__ float smem[];
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
  p.block_q = G >= kRowsPerPass ? 1 : kRowsPerPass / G;
  const int64_t q_tiles = (p.max_seqlen_q + p.block_q - 1) / p.block_q;
  if (p.batch * p.heads_kv > 65535 || q_tiles > 65535 || p.num_splits > (int64_t(1) << 31) - 1)
    throw_range("ops.pagedAttention: too many sequences x kv heads or query tiles for one CUDA launch");
  const int smem = static_cast<int>(2 * BS * p.head_dim * sizeof(float));
  auto kernel = paged_attention_kernel<T, BS>;
  static const bool opted_in = [&] {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 2 * BS * 256 * int(sizeof(float))), "ops.pagedAttention");
    return true;
  }();
  (void)opted_in;
  const dim3 grid(static_cast<unsigned>(p.num_splits), static_cast<unsigned>(p.batch * p.heads_kv), static_cast<unsigned>(q_tiles));
  kernel<<<grid, kThreads, smem, compute_stream()>>>(p);
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
