// attention backward on the GPU (shapes and the algorithm in attention.h).
//   q, dout, out, dq: (totalQ, Hq, D)   k, v, dk, dv: (totalK, Hkv, D)   lse: (Hq, totalQ) f32
// Three launches on the compute stream:
//   1. delta:  delta_i = sum_d dout_id out_id, (Hq, totalQ) f32 in a temporary buffer.
//   2. dk, dv: grid (key tile, kv head, sequence). The block keeps its key tile and walks the query heads of
//      its group and, for each, the query tiles that can see the tile, in increasing order, summing into
//      registers: dv += p^T dout, dk += ds^T q (ds already carries the scale).
//   3. dq:     grid (query tile, query head, sequence). Key tiles in increasing order: dq += ds k.
// dq gets its own pass instead of atomics, so every gradient is deterministic and summed in the same order as
// the CPU twin (the cost: p and dp are computed twice, about 1/3 more matrix work than an atomic dq).
// Each of 2 and 3 has a tensor-core kernel (bf16/f16, D a multiple of 8 up to 128; mma.sync m16n8k16 with f32
// accumulation, cp.async double buffering of the streamed tiles) and a generic SIMT kernel (any dtype, D 1..256).
#include <type_traits>

#include "cuda/attention/attention_common.cuh"
#include "cuda/common/device.h"

namespace qwenlong {

namespace {

using attn::Args;
using attn::Seq;

// ---------------------------------------------------------------------------------------------------------
// 1. delta
// ---------------------------------------------------------------------------------------------------------
template <typename T>
__global__ void __launch_bounds__(256) attn_bwd_delta(Args a) {
  // One warp per (query row, head): dout and out rows of D contiguous elements.
  const int64_t pair = static_cast<int64_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (pair >= a.total_q * a.hq) return;
  const int lane = threadIdx.x & 31;
  const int64_t row = pair / a.hq, h = pair % a.hq;
  const T* dout = static_cast<const T*>(a.dout) + pair * a.d;
  const T* out = static_cast<const T*>(a.out_in) + pair * a.d;
  float acc = 0.f;
  for (int c = lane; c < a.d; c += 32) acc = fmaf(to_f32(dout[c]), to_f32(out[c]), acc);
  acc = warp_sum(acc);
  if (lane == 0) a.delta[h * a.total_q + row] = acc;
}

// ---------------------------------------------------------------------------------------------------------
// Tensor-core path
// ---------------------------------------------------------------------------------------------------------
constexpr int kMmaThreads = 128;  // 4 warps, 16 keys (pass 2) or 16 query rows (pass 3) each
constexpr int kDkdvBK = 64;
template <int kD> __host__ __device__ constexpr int dkdv_bq() { return kD == 128 ? 32 : 64; }  // query tile of pass 2
constexpr int kDqBQ = 64;
template <int kD> __host__ __device__ constexpr int dq_bk() { return kD == 128 ? 32 : 64; }  // key tile of pass 3

template <int kD>
constexpr size_t dkdv_mma_smem() {
  return size_t(2 * kDkdvBK + 4 * dkdv_bq<kD>()) * (kD + 8) * 2 + size_t(4) * dkdv_bq<kD>() * sizeof(float);
}
template <int kD>
constexpr size_t dq_mma_smem() {
  return size_t(2 * kDqBQ + 4 * dq_bk<kD>()) * (kD + 8) * 2;
}

// 2. dk, dv. Warp w owns keys j0 + 16w .. j0 + 16w + 15 and computes, per query tile, the transposed scores
// s^T = k q^T (16 x BQ) and dp^T = v dout^T, so that p^T and ds^T are A operands for dv and dk with no shuffle.
template <typename T, int kD>
__global__ void __launch_bounds__(kMmaThreads) attn_bwd_dkdv_mma(Args a) {
  constexpr int BK = kDkdvBK, BQ = dkdv_bq<kD>();
  constexpr int kS = kD + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);  // [BK][kS]
  T* sV = sK + BK * kS;                    // [BK][kS]
  T* sQ = sV + BK * kS;                    // [2][BQ][kS]
  T* sdO = sQ + 2 * BQ * kS;               // [2][BQ][kS]
  float* sLse = reinterpret_cast<float*>(sdO + 2 * BQ * kS);  // [2][BQ], log2 domain; +inf past the sequence
  float* sDelta = sLse + 2 * BQ;                              // [2][BQ]

  const int tile = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const Seq s = attn::load_seq(a, b);
  const int j0 = tile * BK;
  if (j0 >= s.len_k) return;
  const int keys = min(BK, s.len_k - j0);
  const int D = a.d;
  const int64_t q_stride = static_cast<int64_t>(a.hq) * D, k_stride = static_cast<int64_t>(a.hkv) * D;
  const int64_t k_off = (static_cast<int64_t>(s.k0) + j0) * k_stride + static_cast<int64_t>(kvh) * D;
  const T* qg = static_cast<const T*>(a.q) + static_cast<int64_t>(s.q0) * q_stride;
  const T* dog = static_cast<const T*>(a.dout) + static_cast<int64_t>(s.q0) * q_stride;

  const int q_begin = attn::query_begin_for(s, a.causal, j0) / BQ * BQ;
  const int n_qt = q_begin < s.len_q ? (s.len_q - q_begin + BQ - 1) / BQ : 0;
  const int n_it = a.group * n_qt;  // (query head of the group, query tile), head-major

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;

  // Queue the q / dout tiles of iteration `it` into `stage`, and its lse / delta.
  auto issue = [&](int it, int stage) {
    const int h = kvh * a.group + it / n_qt;
    const int i0 = q_begin + (it % n_qt) * BQ;
    const int rows = min(BQ, s.len_q - i0);
    const int64_t at = static_cast<int64_t>(i0) * q_stride + static_cast<int64_t>(h) * D;
    attn::load_tile_async<T, BQ, kD, kS, kMmaThreads>(sQ + stage * BQ * kS, qg + at, q_stride, rows, D, a.q);
    attn::load_tile_async<T, BQ, kD, kS, kMmaThreads>(sdO + stage * BQ * kS, dog + at, q_stride, rows, D, a.dout);
    if (threadIdx.x < BQ) {
      const int r = threadIdx.x;
      const int64_t at_l = static_cast<int64_t>(h) * a.total_q + s.q0 + i0 + r;
      sLse[stage * BQ + r] = r < rows ? a.lse_in[at_l] * attn::kLog2e : INFINITY;
      sDelta[stage * BQ + r] = r < rows ? a.delta[at_l] : 0.f;
    }
  };

  attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sK, static_cast<const T*>(a.k) + k_off, k_stride, keys, D, a.k);
  attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sV, static_cast<const T*>(a.v) + k_off, k_stride, keys, D, a.v);
  if (n_it > 0) issue(0, 0);
  attn::cp_async_commit();

  float dk[kD / 8][4], dv[kD / 8][4];
#pragma unroll
  for (int n = 0; n < kD / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.f;
  const int key_lo = j0 + warp * 16 + g;  // key index (in the sequence) of this lane's first row

  for (int it = 0; it < n_it; ++it) {
    const int stage = it & 1;
    if (it + 1 < n_it) issue(it + 1, stage ^ 1);
    attn::cp_async_commit();
    attn::cp_async_wait<1>();
    __syncthreads();
    const int i0 = q_begin + (it % n_qt) * BQ;
    const T* cQ = sQ + stage * BQ * kS;
    const T* cdO = sdO + stage * BQ * kS;
    const float* cLse = sLse + stage * BQ;
    const float* cDelta = sDelta + stage * BQ;

    // s^T = k q^T and dp^T = v dout^T, 16 keys x BQ queries per warp.
    float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
    for (int n = 0; n < BQ / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[n][e] = dpt[n][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      uint32_t ka[4], va[4];
      attn::ldmatrix_x4(ka, sK + (warp * 16 + (lane & 15)) * kS + ks * 16 + (lane >> 4) * 8);
      attn::ldmatrix_x4(va, sV + (warp * 16 + (lane & 15)) * kS + ks * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int nb = 0; nb < BQ / 16; ++nb) {
        const int at = (nb * 16 + (lane & 7) + (lane >> 4) * 8) * kS + ks * 16 + ((lane >> 3) & 1) * 8;
        uint32_t qb[4], ob[4];
        attn::ldmatrix_x4(qb, cQ + at);
        attn::mma16816<T>(st[2 * nb], ka, qb[0], qb[1]);
        attn::mma16816<T>(st[2 * nb + 1], ka, qb[2], qb[3]);
        attn::ldmatrix_x4(ob, cdO + at);
        attn::mma16816<T>(dpt[2 * nb], va, ob[0], ob[1]);
        attn::mma16816<T>(dpt[2 * nb + 1], va, ob[2], ob[3]);
      }
    }

    // p^T = 2^(s^T scale log2 e - lse log2 e); ds^T = p^T (dp^T - delta) scale. Masked pairs: 0.
    const bool edge = j0 + BK > s.len_k || (a.causal && j0 + BK - 1 > i0 + s.off);
#pragma unroll
    for (int n = 0; n < BQ / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = n * 8 + 2 * t4 + (e & 1);  // query within the tile
        float p = attn::fast_exp2(st[n][e] * a.scale_log2 - cLse[col]);
        if (edge) {
          const int j = key_lo + (e >> 1) * 8, i = i0 + col;
          if (j >= s.len_k || (a.causal && j > i + s.off)) p = 0.f;
        }
        st[n][e] = p;
        dpt[n][e] = p * (dpt[n][e] - cDelta[col]) * a.scale;
      }
    }

    // dv += p^T dout, dk += ds^T q: A from the accumulators, B = dout / q rows through ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk) {
      uint32_t pa[4], da[4];
      pa[0] = attn::pack2<T>(st[2 * kk][0], st[2 * kk][1]);
      pa[1] = attn::pack2<T>(st[2 * kk][2], st[2 * kk][3]);
      pa[2] = attn::pack2<T>(st[2 * kk + 1][0], st[2 * kk + 1][1]);
      pa[3] = attn::pack2<T>(st[2 * kk + 1][2], st[2 * kk + 1][3]);
      da[0] = attn::pack2<T>(dpt[2 * kk][0], dpt[2 * kk][1]);
      da[1] = attn::pack2<T>(dpt[2 * kk][2], dpt[2 * kk][3]);
      da[2] = attn::pack2<T>(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
      da[3] = attn::pack2<T>(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
#pragma unroll
      for (int dn = 0; dn < kD / 16; ++dn) {
        const int at = (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kS + dn * 16 + (lane >> 4) * 8;
        uint32_t ob[4], qb[4];
        attn::ldmatrix_x4_trans(ob, cdO + at);
        attn::mma16816<T>(dv[2 * dn], pa, ob[0], ob[1]);
        attn::mma16816<T>(dv[2 * dn + 1], pa, ob[2], ob[3]);
        attn::ldmatrix_x4_trans(qb, cQ + at);
        attn::mma16816<T>(dk[2 * dn], da, qb[0], qb[1]);
        attn::mma16816<T>(dk[2 * dn + 1], da, qb[2], qb[3]);
      }
    }
    __syncthreads();  // this stage is free for the prefetch of iteration it + 2
  }
  attn::cp_async_wait<0>();

  // Stage dk / dv in this warp's own rows of sK / sV (no other warp reads them), then 16-byte stores.
  T* sdk = sK + warp * 16 * kS;
  T* sdv = sV + warp * 16 * kS;
#pragma unroll
  for (int n = 0; n < kD / 8; ++n) {
    const int c = n * 8 + 2 * t4;
    *reinterpret_cast<uint32_t*>(sdk + g * kS + c) = attn::pack2<T>(dk[n][0], dk[n][1]);
    *reinterpret_cast<uint32_t*>(sdk + (g + 8) * kS + c) = attn::pack2<T>(dk[n][2], dk[n][3]);
    *reinterpret_cast<uint32_t*>(sdv + g * kS + c) = attn::pack2<T>(dv[n][0], dv[n][1]);
    *reinterpret_cast<uint32_t*>(sdv + (g + 8) * kS + c) = attn::pack2<T>(dv[n][2], dv[n][3]);
  }
  __syncwarp();
  const int64_t w_off = k_off + static_cast<int64_t>(warp) * 16 * k_stride;
  attn::store_tile<T, 16, kD, kS, 32>(static_cast<T*>(a.dk) + w_off, k_stride, sdk, keys - warp * 16, D, lane);
  attn::store_tile<T, 16, kD, kS, 32>(static_cast<T*>(a.dv) + w_off, k_stride, sdv, keys - warp * 16, D, lane);
}

// 3. dq. Warp w owns query rows i0 + 16w .. + 15: s = q k^T, dp = dout v^T, ds = p (dp - delta) scale,
// dq += ds k (k through ldmatrix.trans).
template <typename T, int kD>
__global__ void __launch_bounds__(kMmaThreads) attn_bwd_dq_mma(Args a) {
  constexpr int BQ = kDqBQ, BK = dq_bk<kD>();
  constexpr int kS = kD + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);  // [BQ][kS]
  T* sdO = sQ + BQ * kS;                   // [BQ][kS]
  T* sK = sdO + BQ * kS;                   // [2][BK][kS]
  T* sV = sK + 2 * BK * kS;                // [2][BK][kS]

  const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const Seq s = attn::load_seq(a, b);
  const int i0 = tile * BQ;
  if (i0 >= s.len_q) return;
  const int rows = min(BQ, s.len_q - i0);
  const int kvh = h / a.group;
  const int D = a.d;
  const int64_t q_stride = static_cast<int64_t>(a.hq) * D, k_stride = static_cast<int64_t>(a.hkv) * D;
  const int64_t q_off = (static_cast<int64_t>(s.q0) + i0) * q_stride + static_cast<int64_t>(h) * D;
  const T* kg = static_cast<const T*>(a.k) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  const T* vg = static_cast<const T*>(a.v) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  const int key_end = attn::key_end_for(s, a.causal, i0 + rows);
  const int n_tiles = (key_end + BK - 1) / BK;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;

  attn::load_tile_async<T, BQ, kD, kS, kMmaThreads>(sQ, static_cast<const T*>(a.q) + q_off, q_stride, rows, D, a.q);
  attn::load_tile_async<T, BQ, kD, kS, kMmaThreads>(sdO, static_cast<const T*>(a.dout) + q_off, q_stride, rows, D, a.dout);
  if (n_tiles > 0) {
    attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sK, kg, k_stride, min(BK, key_end), D, a.k);
    attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sV, vg, k_stride, min(BK, key_end), D, a.v);
  }
  attn::cp_async_commit();

  // Row statistics of rows g and g + 8 (log2-domain lse; +inf past the sequence, so p = 0 there).
  const int row_lo = i0 + warp * 16 + g;
  float lse2[2], dlt[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row_lo + r * 8;
    const int64_t at = static_cast<int64_t>(h) * a.total_q + s.q0 + i;
    lse2[r] = i < s.len_q ? a.lse_in[at] * attn::kLog2e : INFINITY;
    dlt[r] = i < s.len_q ? a.delta[at] : 0.f;
  }

  attn::cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[kD / 16][4], of[kD / 16][4];
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) {
    const int at = (warp * 16 + (lane & 15)) * kS + ks * 16 + (lane >> 4) * 8;
    attn::ldmatrix_x4(qf[ks], sQ + at);
    attn::ldmatrix_x4(of[ks], sdO + at);
  }

  float dq[kD / 8][4];
#pragma unroll
  for (int n = 0; n < kD / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;

  for (int kt = 0; kt < n_tiles; ++kt) {
    const int stage = kt & 1;
    const int j0 = kt * BK;
    if (kt + 1 < n_tiles) {
      const int jn = j0 + BK;
      attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sK + (stage ^ 1) * BK * kS, kg + jn * k_stride, k_stride,
                                                        min(BK, key_end - jn), D, a.k);
      attn::load_tile_async<T, BK, kD, kS, kMmaThreads>(sV + (stage ^ 1) * BK * kS, vg + jn * k_stride, k_stride,
                                                        min(BK, key_end - jn), D, a.v);
    }
    attn::cp_async_commit();
    attn::cp_async_wait<1>();
    __syncthreads();
    const T* cK = sK + stage * BK * kS;
    const T* cV = sV + stage * BK * kS;

    float sc[BK / 8][4], dp[BK / 8][4];
#pragma unroll
    for (int n = 0; n < BK / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
#pragma unroll
      for (int nb = 0; nb < BK / 16; ++nb) {
        const int at = (nb * 16 + (lane & 7) + (lane >> 4) * 8) * kS + ks * 16 + ((lane >> 3) & 1) * 8;
        uint32_t kb[4], vb[4];
        attn::ldmatrix_x4(kb, cK + at);
        attn::mma16816<T>(sc[2 * nb], qf[ks], kb[0], kb[1]);
        attn::mma16816<T>(sc[2 * nb + 1], qf[ks], kb[2], kb[3]);
        attn::ldmatrix_x4(vb, cV + at);
        attn::mma16816<T>(dp[2 * nb], of[ks], vb[0], vb[1]);
        attn::mma16816<T>(dp[2 * nb + 1], of[ks], vb[2], vb[3]);
      }
    }

    const bool edge = j0 + BK > s.len_k || (a.causal && j0 + BK - 1 > i0 + s.off);
#pragma unroll
    for (int n = 0; n < BK / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float p = attn::fast_exp2(sc[n][e] * a.scale_log2 - lse2[e >> 1]);
        if (edge) {
          const int j = j0 + n * 8 + 2 * t4 + (e & 1), i = row_lo + (e >> 1) * 8;
          if (j >= s.len_k || (a.causal && j > i + s.off)) p = 0.f;
        }
        sc[n][e] = p * (dp[n][e] - dlt[e >> 1]) * a.scale;  // ds
      }
    }

#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t da[4];
      da[0] = attn::pack2<T>(sc[2 * kk][0], sc[2 * kk][1]);
      da[1] = attn::pack2<T>(sc[2 * kk][2], sc[2 * kk][3]);
      da[2] = attn::pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
      da[3] = attn::pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
#pragma unroll
      for (int dn = 0; dn < kD / 16; ++dn) {
        uint32_t kb[4];
        attn::ldmatrix_x4_trans(kb, cK + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kS + dn * 16 + (lane >> 4) * 8);
        attn::mma16816<T>(dq[2 * dn], da, kb[0], kb[1]);
        attn::mma16816<T>(dq[2 * dn + 1], da, kb[2], kb[3]);
      }
    }
    __syncthreads();
  }
  attn::cp_async_wait<0>();

  // Stage in this warp's own rows of sQ (read only by this warp, above), then 16-byte stores.
  T* sdq = sQ + warp * 16 * kS;
#pragma unroll
  for (int n = 0; n < kD / 8; ++n) {
    const int c = n * 8 + 2 * t4;
    *reinterpret_cast<uint32_t*>(sdq + g * kS + c) = attn::pack2<T>(dq[n][0], dq[n][1]);
    *reinterpret_cast<uint32_t*>(sdq + (g + 8) * kS + c) = attn::pack2<T>(dq[n][2], dq[n][3]);
  }
  __syncwarp();
  attn::store_tile<T, 16, kD, kS, 32>(static_cast<T*>(a.dq) + q_off + static_cast<int64_t>(warp) * 16 * q_stride, q_stride,
                                      sdq, rows - warp * 16, D, lane);
}

// ---------------------------------------------------------------------------------------------------------
// Generic path: f32 tiles in shared memory, odd row stride (conflict-free column reads by 16-32 lanes).
// ---------------------------------------------------------------------------------------------------------
constexpr int kSimtThreads = 128;
constexpr int kSimtB = 16;  // query and key tile
constexpr int kSimtPerWarp = kSimtB / 4;

inline size_t bwd_simt_smem(int d) {
  return (size_t(4) * kSimtB * (d | 1) + 2 * kSimtB * kSimtB + 2 * kSimtB) * sizeof(float);
}

// ds (scaled) and p for the BQ x BK pairs of the current tiles; pairs that are masked or out of range: 0.
__device__ __forceinline__ void simt_p_ds(const Args& a, const Seq& s, const float* sQ, const float* sdO,
                                          const float* sK, const float* sV, const float* sLse, const float* sDelta,
                                          float* sP, float* sdS, int i0, int rows, int j0, int keys, int Dp) {
  constexpr int B = kSimtB;
  for (int e = threadIdx.x; e < B * B; e += kSimtThreads) {
    const int r = e / B, c = e % B;
    const int i = i0 + r, j = j0 + c;
    float p = 0.f, ds = 0.f;
    if (r < rows && c < keys && (!a.causal || j <= i + s.off)) {
      float qk = 0.f, dov = 0.f;
      for (int d = 0; d < a.d; ++d) {
        qk = fmaf(sQ[r * Dp + d], sK[c * Dp + d], qk);
        dov = fmaf(sdO[r * Dp + d], sV[c * Dp + d], dov);
      }
      p = exp2f(qk * a.scale_log2 - sLse[r]);
      ds = p * (dov - sDelta[r]) * a.scale;
    }
    if (sP) sP[e] = p;
    sdS[e] = ds;
  }
}

// Rows [0, rows) of a (rows, stride) tensor into f32 shared memory (row stride Dp); the rest of the tile: 0.
template <typename T>
__device__ __forceinline__ void simt_load(float* dst, const T* src, int64_t stride, int rows, int D, int Dp) {
  for (int idx = threadIdx.x; idx < kSimtB * D; idx += kSimtThreads) {
    const int r = idx / D, c = idx % D;
    dst[r * Dp + c] = r < rows ? to_f32(src[r * stride + c]) : 0.f;
  }
}

__device__ __forceinline__ void simt_load_stats(const Args& a, const Seq& s, float* sLse, float* sDelta, int h, int i0, int rows) {
  if (threadIdx.x < kSimtB) {
    const int r = threadIdx.x;
    const int64_t at = static_cast<int64_t>(h) * a.total_q + s.q0 + i0 + r;
    sLse[r] = r < rows ? a.lse_in[at] * attn::kLog2e : INFINITY;
    sDelta[r] = r < rows ? a.delta[at] : 0.f;
  }
}

template <typename T, int DT>
__global__ void __launch_bounds__(kSimtThreads) attn_bwd_dkdv_simt(Args a) {
  constexpr int B = kSimtB, R = kSimtPerWarp;
  extern __shared__ float smem_f[];
  const int D = a.d, Dp = D | 1;
  float* sK = smem_f;
  float* sV = sK + B * Dp;
  float* sQ = sV + B * Dp;
  float* sdO = sQ + B * Dp;
  float* sP = sdO + B * Dp;
  float* sdS = sP + B * B;
  float* sLse = sdS + B * B;
  float* sDelta = sLse + B;

  const int kvh = blockIdx.y, b = blockIdx.z;
  const Seq s = attn::load_seq(a, b);
  const int j0 = blockIdx.x * B;
  if (j0 >= s.len_k) return;
  const int keys = min(B, s.len_k - j0);
  const int64_t q_stride = static_cast<int64_t>(a.hq) * D, k_stride = static_cast<int64_t>(a.hkv) * D;
  const int64_t k_off = (static_cast<int64_t>(s.k0) + j0) * k_stride + static_cast<int64_t>(kvh) * D;
  simt_load(sK, static_cast<const T*>(a.k) + k_off, k_stride, keys, D, Dp);
  simt_load(sV, static_cast<const T*>(a.v) + k_off, k_stride, keys, D, Dp);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int q_begin = attn::query_begin_for(s, a.causal, j0) / B * B;

  float dk[R][DT], dv[R][DT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < DT; ++t) dk[r][t] = dv[r][t] = 0.f;

  for (int hh = 0; hh < a.group; ++hh) {
    const int h = kvh * a.group + hh;
    for (int i0 = q_begin; i0 < s.len_q; i0 += B) {
      const int rows = min(B, s.len_q - i0);
      __syncthreads();  // the previous tile has been read
      const int64_t q_off = (static_cast<int64_t>(s.q0) + i0) * q_stride + static_cast<int64_t>(h) * D;
      simt_load(sQ, static_cast<const T*>(a.q) + q_off, q_stride, rows, D, Dp);
      simt_load(sdO, static_cast<const T*>(a.dout) + q_off, q_stride, rows, D, Dp);
      simt_load_stats(a, s, sLse, sDelta, h, i0, rows);
      __syncthreads();
      simt_p_ds(a, s, sQ, sdO, sK, sV, sLse, sDelta, sP, sdS, i0, rows, j0, keys, Dp);
      __syncthreads();
      for (int r = 0; r < rows; ++r) {
#pragma unroll
        for (int kk = 0; kk < R; ++kk) {
          const int c = warp * R + kk;  // this warp's keys
          const float p = sP[r * B + c], ds = sdS[r * B + c];
#pragma unroll
          for (int t = 0; t < DT; ++t) {
            const int d = lane + 32 * t;
            if (d < D) {
              dv[kk][t] = fmaf(p, sdO[r * Dp + d], dv[kk][t]);
              dk[kk][t] = fmaf(ds, sQ[r * Dp + d], dk[kk][t]);
            }
          }
        }
      }
    }
  }

#pragma unroll
  for (int kk = 0; kk < R; ++kk) {
    const int c = warp * R + kk;
    if (c >= keys) break;
    T* dkr = static_cast<T*>(a.dk) + k_off + c * k_stride;
    T* dvr = static_cast<T*>(a.dv) + k_off + c * k_stride;
#pragma unroll
    for (int t = 0; t < DT; ++t) {
      const int d = lane + 32 * t;
      if (d < D) {
        dkr[d] = from_f32<T>(dk[kk][t]);
        dvr[d] = from_f32<T>(dv[kk][t]);
      }
    }
  }
}

template <typename T, int DT>
__global__ void __launch_bounds__(kSimtThreads) attn_bwd_dq_simt(Args a) {
  constexpr int B = kSimtB, R = kSimtPerWarp;
  extern __shared__ float smem_f[];
  const int D = a.d, Dp = D | 1;
  float* sK = smem_f;
  float* sV = sK + B * Dp;
  float* sQ = sV + B * Dp;
  float* sdO = sQ + B * Dp;
  float* sdS = sdO + B * Dp + B * B;  // same layout as the dk/dv kernel (its sP slot unused)
  float* sLse = sdS + B * B;
  float* sDelta = sLse + B;

  const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const Seq s = attn::load_seq(a, b);
  const int i0 = tile * B;
  if (i0 >= s.len_q) return;
  const int rows = min(B, s.len_q - i0);
  const int kvh = h / a.group;
  const int64_t q_stride = static_cast<int64_t>(a.hq) * D, k_stride = static_cast<int64_t>(a.hkv) * D;
  const int64_t q_off = (static_cast<int64_t>(s.q0) + i0) * q_stride + static_cast<int64_t>(h) * D;
  const T* kg = static_cast<const T*>(a.k) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  const T* vg = static_cast<const T*>(a.v) + static_cast<int64_t>(s.k0) * k_stride + static_cast<int64_t>(kvh) * D;
  simt_load(sQ, static_cast<const T*>(a.q) + q_off, q_stride, rows, D, Dp);
  simt_load(sdO, static_cast<const T*>(a.dout) + q_off, q_stride, rows, D, Dp);
  simt_load_stats(a, s, sLse, sDelta, h, i0, rows);
  const int key_end = attn::key_end_for(s, a.causal, i0 + rows);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  float dq[R][DT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < DT; ++t) dq[r][t] = 0.f;

  for (int j0 = 0; j0 < key_end; j0 += B) {
    const int keys = min(B, key_end - j0);
    __syncthreads();  // previous K/V tile read (first pass: q, dout, stats written)
    simt_load(sK, kg + j0 * k_stride, k_stride, keys, D, Dp);
    simt_load(sV, vg + j0 * k_stride, k_stride, keys, D, Dp);
    __syncthreads();
    simt_p_ds(a, s, sQ, sdO, sK, sV, sLse, sDelta, nullptr, sdS, i0, rows, j0, keys, Dp);
    __syncthreads();
    for (int c = 0; c < keys; ++c) {
#pragma unroll
      for (int rr = 0; rr < R; ++rr) {
        const float ds = sdS[(warp * R + rr) * B + c];
#pragma unroll
        for (int t = 0; t < DT; ++t) {
          const int d = lane + 32 * t;
          if (d < D) dq[rr][t] = fmaf(ds, sK[c * Dp + d], dq[rr][t]);
        }
      }
    }
  }

  T* dqg = static_cast<T*>(a.dq) + q_off;
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    const int r = warp * R + rr;
    if (r >= rows) break;
#pragma unroll
    for (int t = 0; t < DT; ++t) {
      const int d = lane + 32 * t;
      if (d < D) dqg[r * q_stride + d] = from_f32<T>(dq[rr][t]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Launch
// ---------------------------------------------------------------------------------------------------------
template <typename T, int kD>
void launch_mma(const Args& a, const AttentionParams& p) {
  if (p.total_k > 0 && p.max_seqlen_k > 0) {
    const size_t smem = dkdv_mma_smem<kD>();
    attn::set_smem(attn_bwd_dkdv_mma<T, kD>, smem, "ops.attentionBackward");
    const dim3 grid(static_cast<unsigned>((p.max_seqlen_k + kDkdvBK - 1) / kDkdvBK), static_cast<unsigned>(p.heads_kv),
                    static_cast<unsigned>(p.batch));
    attn_bwd_dkdv_mma<T, kD><<<grid, kMmaThreads, smem, compute_stream()>>>(a);
    check_launch("ops.attentionBackward");
  }
  if (p.total_q > 0 && p.max_seqlen_q > 0) {
    const size_t smem = dq_mma_smem<kD>();
    attn::set_smem(attn_bwd_dq_mma<T, kD>, smem, "ops.attentionBackward");
    const dim3 grid(static_cast<unsigned>((p.max_seqlen_q + kDqBQ - 1) / kDqBQ), static_cast<unsigned>(p.heads_q),
                    static_cast<unsigned>(p.batch));
    attn_bwd_dq_mma<T, kD><<<grid, kMmaThreads, smem, compute_stream()>>>(a);
    check_launch("ops.attentionBackward");
  }
}

template <typename T, int DT>
void launch_simt(const Args& a, const AttentionParams& p) {
  const size_t smem = bwd_simt_smem(a.d);
  if (p.total_k > 0 && p.max_seqlen_k > 0) {
    attn::set_smem(attn_bwd_dkdv_simt<T, DT>, smem, "ops.attentionBackward");
    const dim3 grid(static_cast<unsigned>((p.max_seqlen_k + kSimtB - 1) / kSimtB), static_cast<unsigned>(p.heads_kv),
                    static_cast<unsigned>(p.batch));
    attn_bwd_dkdv_simt<T, DT><<<grid, kSimtThreads, smem, compute_stream()>>>(a);
    check_launch("ops.attentionBackward");
  }
  if (p.total_q > 0 && p.max_seqlen_q > 0) {
    attn::set_smem(attn_bwd_dq_simt<T, DT>, smem, "ops.attentionBackward");
    const dim3 grid(static_cast<unsigned>((p.max_seqlen_q + kSimtB - 1) / kSimtB), static_cast<unsigned>(p.heads_q),
                    static_cast<unsigned>(p.batch));
    attn_bwd_dq_simt<T, DT><<<grid, kSimtThreads, smem, compute_stream()>>>(a);
    check_launch("ops.attentionBackward");
  }
}

template <typename T>
void launch_generic(const Args& a, const AttentionParams& p) {
  attn::with_simt_width(p.head_dim, [&](auto w) { launch_simt<T, decltype(w)::value>(a, p); });
}

template <typename T>
void launch_fast(const Args& a, const AttentionParams& p) {
  attn::with_padded_dim(p.head_dim, [&](auto d) { launch_mma<T, decltype(d)::value>(a, p); });
}

bool uses_tensor_cores(const AttentionParams& p) {
  return (p.dtype == DType::bf16 || p.dtype == DType::f16) && p.head_dim % 8 == 0 && p.head_dim <= 128 &&
         attn::aligned16(p.q) && attn::aligned16(p.k) && attn::aligned16(p.v) && attn::aligned16(p.dout) &&
         attn::aligned16(p.dq) && attn::aligned16(p.dk) && attn::aligned16(p.dv);
}

}  // namespace

void attention_backward_cuda(const AttentionParams& p) {
  attn::check_params(p, "ops.attentionBackward");
  if (p.total_q == 0 && p.total_k == 0) return;
  NvtxRange range("qwenlong.attentionBackward");
  Args a = attn::make_args(p);
  // Lives until the end of this call; the caching allocator hands the block out again only to work queued
  // after these kernels on the same stream.
  std::shared_ptr<Storage> delta;
  if (p.total_q > 0) {
    delta = Storage::allocate(Device::cuda, static_cast<size_t>(p.total_q * p.heads_q) * sizeof(float));
    a.delta = static_cast<float*>(delta->data());
  }
  const bool fast = uses_tensor_cores(p);
  dispatch_float_cuda(p.dtype, "ops.attentionBackward", [&](auto t) {
    using T = decltype(t);
    if (p.total_q > 0) {
      const int64_t pairs = p.total_q * p.heads_q;
      attn_bwd_delta<T><<<static_cast<unsigned>((pairs + 7) / 8), 256, 0, compute_stream()>>>(a);
      check_launch("ops.attentionBackward");
    }
    if constexpr (std::is_same_v<T, float>) {
      launch_generic<T>(a, p);
    } else {
      if (fast) launch_fast<T>(a, p);
      else launch_generic<T>(a, p);
    }
  });
}

}  // namespace qwenlong
