// attention: exact softmax attention over packed ragged batches (FlashAttention-2's algorithm), and its backward.
//   q, out, dout, dq: (totalQ, Hq, D)     k, v, dk, dv: (totalK, Hkv, D)     lse: (Hq, totalQ) f32
//   cu_seqlens_q / cu_seqlens_k: (B + 1) i32 prefix sums: sequence b owns rows [cu[b], cu[b+1])
//   GQA: query head h reads kv head h / (Hq / Hkv); dk, dv sum over the query heads sharing a kv head.
//   causal: bottom-right aligned, query i (0-based in its sequence) sees keys j <= i + lenK - lenQ.
//   S = scale * q k^T;  lse_i = log sum_j exp(S_ij) (natural log);  out_i = sum_j exp(S_ij - lse_i) v_j
//   A query row that sees no key: out = 0, lse = +inf, zero gradients.
// Algorithm (both backends, same tile loop and merge order):
//   forward: per (sequence, query head, query tile of block_q rows): for each key tile of block_k keys in
//     increasing order (stopping at the causal limit): s = scale*log2(e) * q k^T; m_new = max(m, rowmax s);
//     p = exp2(s - m_new); l = l * exp2(m - m_new) + rowsum p; acc = acc * exp2(m - m_new) + p v.
//     out = acc / l; lse = (m + log2(l)) * ln 2.
//   backward: delta_i = sum_d dout_id out_id. Pass 1 per (sequence, kv head, key tile): for each query head of the
//     group and each query tile in increasing order: p = exp2(s - lse*log2(e)); dv += p^T dout; dp = dout v^T;
//     ds = p * (dp - delta); dk += scale * ds^T q. Pass 2 per (sequence, query head, query tile): for each key
//     tile in increasing order, recompute p and ds; dq += scale * ds k. dq in its own pass (no atomics) keeps
//     every gradient deterministic and the two backends in the same summation order.
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct AttentionParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  // backward
  const void* dout = nullptr;
  const float* lse_in = nullptr;
  const void* out_in = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  const int32_t* cu_seqlens_q = nullptr;  // host pointers on the CPU, device pointers on CUDA
  const int32_t* cu_seqlens_k = nullptr;
  int64_t batch = 1;
  int64_t total_q = 0, total_k = 0;
  int64_t heads_q = 1, heads_kv = 1, head_dim = 0;
  int64_t max_seqlen_q = 0, max_seqlen_k = 0;
  float scale = 1.f;
  bool causal = false;
  DType dtype = DType::f32;  // of q, k, v, out, dout, dq, dk, dv
  // tiles: parameters of the algorithm (CPU: sized for caches; CUDA: for shared memory)
  int block_q = 64;
  int block_k = 64;
};

void attention_forward_cpu(const AttentionParams& p);
void attention_backward_cpu(const AttentionParams& p);
void attention_forward_cuda(const AttentionParams& p);
void attention_backward_cuda(const AttentionParams& p);

}  // namespace qwenlong
