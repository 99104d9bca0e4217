// attention forward on the GPU (shapes and the algorithm in attention.h).
//   q, out: (totalQ, Hq, D)   k, v: (totalK, Hkv, D)   lse: (Hq, totalQ) f32
// Grid: (query tile, query head, sequence); query tiles are visited last-first so that under causal the
// longest tiles start first. A block whose tile lies past its sequence's end exits at once.
// Two kernels:
//   attn_fwd_mma   bf16/f16, D a multiple of 8 up to 128 (padded to 16/32/64/128): 4 warps x 16 query rows,
//                  64-key tiles double-buffered with cp.async, S = q k^T and O += P V on mma.sync m16n8k16
//                  (f32 accumulate), P kept in registers as the A operand of P V (FlashAttention-2).
//   attn_fwd_simt  any dtype, any D in 1..256: f32 tiles in shared memory, one lane per key for S and one
//                  lane per output column for P V.
#include <type_traits>

#include "cuda/attention/attention_common.cuh"
#include "cuda/common/device.h"

namespace qwenlong {

namespace {

using attn::Args;
using attn::Seq;

// ---------------------------------------------------------------------------------------------------------
// Tensor-core path
// ---------------------------------------------------------------------------------------------------------
constexpr int kMmaThreads = 128;  // 4 warps, 16 query rows each
constexpr int kFwdBQ = 64, kFwdBK = 64;

template <int kD>
constexpr size_t fwd_mma_smem() {
  return size_t(4) * kFwdBK * (kD + 8) * 2;  // K and V, two stages each; q shares K's second stage
}

template <typename T, int kD>
__global__ void __launch_bounds__(kMmaThreads) attn_fwd_mma(Args a) {
  constexpr int BQ = kFwdBQ, BK = kFwdBK;
  constexpr int kS = kD + 8;  // row stride of the shared tiles: 16 bytes of padding keep ldmatrix conflict-free
  static_assert(BQ == BK, "q is staged in the second K stage");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);  // [2][BK][kS]
  T* sV = sK + 2 * BK * kS;                // [2][BK][kS]
  T* sQ = sK + BK * kS;                    // [BQ][kS], aliases K stage 1 (free until the first prefetch)

  const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const Seq s = attn::load_seq(a, b);
  const int i0 = tile * BQ;
  if (i0 >= s.len_q) return;
  const int rows = min(BQ, s.len_q - i0);
  const int kvh = h / a.group;
  const int D = a.d;
  const int64_t q_stride = static_cast<int64_t>(a.hq) * D, k_stride = static_cast<int64_t>(a.hkv) * D;
  const T* q = static_cast<const T*>(a.q) + (static_cast<int64_t>(s.q0) + i0) * q_stride + static_cast<int64_t>(h) * D;
  const T* kg = static_cast<const T*>(a.k) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  const T* vg = static_cast<const T*>(a.v) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  const int key_end = attn::key_end_for(s, a.causal, i0 + rows);
  const int n_tiles = (key_end + BK - 1) / BK;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;

  // 1. q tile and the first K/V tile.
  attn::load_tile_async<T, BQ, kD, kS, kMmaThreads>(sQ, q, q_stride, rows, D, a.q);
  if (n_tiles > 0) {
    attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sK, kg, k_stride, min(BK, key_end), D, a.k);
    attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sV, vg, k_stride, min(BK, key_end), D, a.v);
  }
  attn::cp_async_commit();
  attn::cp_async_wait<0>();
  __syncthreads();

  // 2. This warp's 16 q rows as A fragments, one per 16 columns.
  uint32_t qf[kD / 16][4];
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks)
    attn::ldmatrix_x4(qf[ks], sQ + (warp * 16 + (lane & 15)) * kS + ks * 16 + (lane >> 4) * 8);
  __syncthreads();  // sQ is K stage 1: every warp has its fragments before the first prefetch overwrites it

  float o[kD / 8][4];
#pragma unroll
  for (int n = 0; n < kD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8 of this warp; l: this lane's part
  const int row_lo = i0 + warp * 16 + g;                 // query index (in the sequence) of row g

  // 3. Key tiles in increasing order.
  for (int kt = 0; kt < n_tiles; ++kt) {
    const int stage = kt & 1;
    const int j0 = kt * BK;
    if (kt + 1 < n_tiles) {
      const int jn = j0 + BK;
      T* nK = sK + (stage ^ 1) * BK * kS;
      T* nV = sV + (stage ^ 1) * BK * kS;
      attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(nK, kg + jn * k_stride, k_stride, min(BK, key_end - jn), D, a.k);
      attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(nV, vg + jn * k_stride, k_stride, min(BK, key_end - jn), D, a.v);
    }
    attn::cp_async_commit();
    attn::cp_async_wait<1>();  // tile kt has landed (tile kt + 1 may still be in flight)
    __syncthreads();
    const T* cK = sK + stage * BK * kS;
    const T* cV = sV + stage * BK * kS;

    // 3a. s = q k^T (16 x BK per warp).
    float sc[BK / 8][4];
#pragma unroll
    for (int n = 0; n < BK / 8; ++n) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
#pragma unroll
      for (int nb = 0; nb < BK / 16; ++nb) {
        uint32_t kb[4];
        attn::ldmatrix_x4(kb, cK + (nb * 16 + (lane & 7) + (lane >> 4) * 8) * kS + ks * 16 + ((lane >> 3) & 1) * 8);
        attn::mma16816<T>(sc[2 * nb], qf[ks], kb[0], kb[1]);
        attn::mma16816<T>(sc[2 * nb + 1], qf[ks], kb[2], kb[3]);
      }
    }

    // 3b. Scale into the log2 domain; mask keys past the sequence and, under causal, past each row's limit.
    const bool edge = j0 + BK > s.len_k || (a.causal && j0 + BK - 1 > i0 + s.off);
#pragma unroll
    for (int n = 0; n < BK / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = sc[n][e] * a.scale_log2;
        if (edge) {
          const int j = j0 + n * 8 + 2 * t4 + (e & 1);
          const int i = row_lo + (e >> 1) * 8;
          if (j >= s.len_k || (a.causal && j > i + s.off)) x = -INFINITY;
        }
        sc[n][e] = x;
      }
    }

    // 3c. Online softmax: new row max (over the 4 lanes of a row), rescale, p = 2^(s - m).
    attn::online_softmax(sc, m, l, o);

    // 3d. O += P V, P rounded to T as the A operand straight from the S accumulators.
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = attn::pack2<T>(sc[2 * kk][0], sc[2 * kk][1]);
      pa[1] = attn::pack2<T>(sc[2 * kk][2], sc[2 * kk][3]);
      pa[2] = attn::pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
      pa[3] = attn::pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
#pragma unroll
      for (int dn = 0; dn < kD / 16; ++dn) {
        uint32_t vb[4];
        attn::ldmatrix_x4_trans(vb, cV + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kS + dn * 16 + (lane >> 4) * 8);
        attn::mma16816<T>(o[2 * dn], pa, vb[0], vb[1]);
        attn::mma16816<T>(o[2 * dn + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration refills it
  }
  attn::cp_async_wait<0>();  // nothing may still be landing in shared memory when it is reused below

  // 4. out = O / l, lse = (m + log2 l) ln 2; a row with no key: out 0, lse +inf.
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;
    const int i = row_lo + r * 8;
    if (t4 == 0 && i < s.len_q)
      a.lse[static_cast<int64_t>(h) * a.total_q + s.q0 + i] = l[r] > 0.f ? (m[r] + log2f(l[r])) * attn::kLn2 : INFINITY;
  }
  // Stage this warp's 16 rows in its own rows of sQ (only this warp touches them), then 16-byte stores.
  T* sO = sQ + warp * 16 * kS;
#pragma unroll
  for (int n = 0; n < kD / 8; ++n) {
    *reinterpret_cast<uint32_t*>(sO + g * kS + n * 8 + 2 * t4) = attn::pack2<T>(o[n][0] * inv[0], o[n][1] * inv[0]);
    *reinterpret_cast<uint32_t*>(sO + (g + 8) * kS + n * 8 + 2 * t4) = attn::pack2<T>(o[n][2] * inv[1], o[n][3] * inv[1]);
  }
  __syncwarp();
  T* out = static_cast<T*>(a.out) + (static_cast<int64_t>(s.q0) + i0 + warp * 16) * q_stride + static_cast<int64_t>(h) * D;
  attn::store_tile<T, 16, kD, kS, 32>(out, q_stride, sO, rows - warp * 16, D, lane);
}

// ---------------------------------------------------------------------------------------------------------
// Generic path
// ---------------------------------------------------------------------------------------------------------
constexpr int kSimtThreads = 128;
constexpr int kSimtBQ = 16, kSimtBK = 32, kSimtRowsPerWarp = 4;

inline size_t fwd_simt_smem(int d) { return size_t(kSimtBQ + 2 * kSimtBK) * (d | 1) * sizeof(float); }

// DT: output columns per lane (D <= 32 * DT).
template <typename T, int DT>
__global__ void __launch_bounds__(kSimtThreads) attn_fwd_simt(Args a) {
  constexpr int BQ = kSimtBQ, BK = kSimtBK, R = kSimtRowsPerWarp;
  extern __shared__ float smem_f[];
  const int D = a.d, Dp = D | 1;  // odd row stride: 32 lanes reading 32 rows at one column hit 32 banks
  float* sQ = smem_f;             // [BQ][Dp]
  float* sK = sQ + BQ * Dp;       // [BK][Dp]
  float* sV = sK + BK * Dp;       // [BK][Dp]

  const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const Seq s = attn::load_seq(a, b);
  const int i0 = tile * BQ;
  if (i0 >= s.len_q) return;
  const int rows = min(BQ, s.len_q - i0);
  const int kvh = h / a.group;
  const int64_t q_stride = static_cast<int64_t>(a.hq) * D, k_stride = static_cast<int64_t>(a.hkv) * D;
  const T* q = static_cast<const T*>(a.q) + (static_cast<int64_t>(s.q0) + i0) * q_stride + static_cast<int64_t>(h) * D;
  const T* kg = static_cast<const T*>(a.k) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  const T* vg = static_cast<const T*>(a.v) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  const int key_end = attn::key_end_for(s, a.causal, i0 + rows);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  for (int idx = threadIdx.x; idx < BQ * D; idx += kSimtThreads) {
    const int r = idx / D, c = idx % D;
    sQ[r * Dp + c] = r < rows ? to_f32(q[r * q_stride + c]) : 0.f;
  }

  float m[R], l[R], acc[R][DT];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int t = 0; t < DT; ++t) acc[r][t] = 0.f;
  }

  for (int j0 = 0; j0 < key_end; j0 += BK) {
    __syncthreads();  // the previous tile has been read (first pass: sQ is written)
    const int keys = min(BK, key_end - j0);
    for (int idx = threadIdx.x; idx < BK * D; idx += kSimtThreads) {
      const int r = idx / D, c = idx % D;
      const int64_t at = (j0 + r) * k_stride + c;
      sK[r * Dp + c] = r < keys ? to_f32(kg[at]) : 0.f;
      sV[r * Dp + c] = r < keys ? to_f32(vg[at]) : 0.f;
    }
    __syncthreads();
    const int j = j0 + lane;  // this lane's key
#pragma unroll
    for (int rr = 0; rr < R; ++rr) {
      const int r = warp * R + rr;
      if (r >= rows) break;  // warp-uniform
      const int i = i0 + r;
      float x = -INFINITY;
      if (j < key_end && (!a.causal || j <= i + s.off)) {
        float dot = 0.f;
        for (int c = 0; c < D; ++c) dot = fmaf(sQ[r * Dp + c], sK[lane * Dp + c], dot);
        x = dot * a.scale_log2;
      }
      float mx = x;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_new = fmaxf(m[rr], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float p = exp2f(x - m_use);
      const float alpha = exp2f(m[rr] - m_use);
      l[rr] = l[rr] * alpha + warp_sum(p);
      m[rr] = m_new;
#pragma unroll
      for (int t = 0; t < DT; ++t) acc[rr][t] *= alpha;
      for (int jj = 0; jj < keys; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
        for (int t = 0; t < DT; ++t) {
          const int c = lane + 32 * t;
          if (c < D) acc[rr][t] = fmaf(pj, sV[jj * Dp + c], acc[rr][t]);
        }
      }
    }
  }

  T* out = static_cast<T*>(a.out) + (static_cast<int64_t>(s.q0) + i0) * q_stride + static_cast<int64_t>(h) * D;
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    const int r = warp * R + rr;
    if (r >= rows) break;
    const float inv = l[rr] > 0.f ? 1.f / l[rr] : 0.f;
#pragma unroll
    for (int t = 0; t < DT; ++t) {
      const int c = lane + 32 * t;
      if (c < D) out[r * q_stride + c] = from_f32<T>(acc[rr][t] * inv);
    }
    if (lane == 0)
      a.lse[static_cast<int64_t>(h) * a.total_q + s.q0 + i0 + r] = l[rr] > 0.f ? (m[rr] + log2f(l[rr])) * attn::kLn2 : INFINITY;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Launch
// ---------------------------------------------------------------------------------------------------------
template <typename T, int kD>
void launch_mma(const Args& a, const AttentionParams& p) {
  const size_t smem = fwd_mma_smem<kD>();
  attn::set_smem(attn_fwd_mma<T, kD>, smem, "ops.attention");
  const dim3 grid(static_cast<unsigned>((p.max_seqlen_q + kFwdBQ - 1) / kFwdBQ), static_cast<unsigned>(p.heads_q),
                  static_cast<unsigned>(p.batch));
  attn_fwd_mma<T, kD><<<grid, kMmaThreads, smem, compute_stream()>>>(a);
}

template <typename T, int DT>
void launch_simt(const Args& a, const AttentionParams& p) {
  const size_t smem = fwd_simt_smem(a.d);
  attn::set_smem(attn_fwd_simt<T, DT>, smem, "ops.attention");
  const dim3 grid(static_cast<unsigned>((p.max_seqlen_q + kSimtBQ - 1) / kSimtBQ), static_cast<unsigned>(p.heads_q),
                  static_cast<unsigned>(p.batch));
  attn_fwd_simt<T, DT><<<grid, kSimtThreads, smem, compute_stream()>>>(a);
}

template <typename T>
void launch_generic(const Args& a, const AttentionParams& p) {
  attn::with_simt_width(p.head_dim, [&](auto w) { launch_simt<T, decltype(w)::value>(a, p); });
}

template <typename T>
void launch_fast(const Args& a, const AttentionParams& p) {
  attn::with_padded_dim(p.head_dim, [&](auto d) { launch_mma<T, decltype(d)::value>(a, p); });
}

// The tensor-core kernel takes bf16/f16 with D a multiple of 8 up to 128 and 16-byte aligned rows.
bool uses_tensor_cores(const AttentionParams& p) {
  return (p.dtype == DType::bf16 || p.dtype == DType::f16) && p.head_dim % 8 == 0 && p.head_dim <= 128 &&
         attn::aligned16(p.q) && attn::aligned16(p.k) && attn::aligned16(p.v) && attn::aligned16(p.out);
}

}  // namespace

void attention_forward_cuda(const AttentionParams& p) {
  attn::check_params(p, "ops.attention");
  if (p.total_q == 0 || p.max_seqlen_q == 0) return;
  NvtxRange range("qwenlong.attention");
  const Args a = attn::make_args(p);
  const bool fast = uses_tensor_cores(p);
  dispatch_float_cuda(p.dtype, "ops.attention", [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_same_v<T, float>) {
      launch_generic<T>(a, p);
    } else {
      if (fast) launch_fast<T>(a, p);
      else launch_generic<T>(a, p);
    }
  });
  check_launch("ops.attention");
}

}  // namespace qwenlong
