// kv_cache: the paged KV cache's native pieces, and attention that reads it.
//
// Pool layout, per layer and for K and V alike: (num_blocks, heads_kv, block_size, head_dim), so one kv head's
// part of one block (block_size x head_dim) is contiguous. A token's slot is block * block_size + offset.
//
// kv_write: pool[slot[i] / bs, h, slot[i] % bs, :] = src[i, h, :] for i < n, every kv head, K and V together.
// kv_copy_blocks: whole blocks pool[dst] = pool[src] (copy-on-write before a shared block is written).
//
// paged attention, per sequence b with len_k = context_lens[b] keys (held in the blocks block_tables[b, :]) and
// len_q = cu_seqlens_q[b+1] - cu_seqlens_q[b] query rows (the last len_q of those keys' tokens, len_q <= len_k):
//   query i (0-based in its sequence) sees key j when !causal or j <= i + len_k - len_q (bottom-right aligned);
//   out_i = softmax_j(scale * q_i . k_j) v_j; a row that sees no key gives 0.
// Algorithm (both backends, same partitioning and merge): the keys of a sequence are cut into partitions of
// split_size tokens (a multiple of block_size). A work item takes a sequence, a partition, a query tile and one kv
// head (CUDA) or a group of kv heads (CPU: all of a decode step's, so that one block's K of every head, a contiguous
// run of the pool, is read in one go), with every query head of each kv head's group, so each K/V block is read once
// per kv head. Inside an item, keys in increasing order, in tiles (whole blocks), online softmax in the log2 domain
// once per tile and row: s = scale*log2(e) * q.k; m' = max(m, max s); p = exp2(s - m'); l = l*exp2(m - m') + sum p;
// acc = acc*exp2(m - m') + p v. One partition: out = acc / l. Several: each writes (m, l, acc) to the workspace, and
// a second pass merges partitions in increasing order: M = max m_s; out = sum_s exp2(m_s - M) acc_s / sum_s
// exp2(m_s - M) l_s. The tile only changes where rounding happens, never the result beyond it.
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct KvWriteParams {
  const void* k = nullptr;  // (n, heads_kv, head_dim)
  const void* v = nullptr;
  void* pool_k = nullptr;  // (num_blocks, heads_kv, block_size, head_dim)
  void* pool_v = nullptr;
  const int32_t* slots = nullptr;  // (n): host pointer on the CPU, device pointer on CUDA
  int64_t n = 0, heads_kv = 1, head_dim = 0, block_size = 16;
  DType dtype = DType::bf16;  // of k, v and the pools
};

struct KvCopyParams {
  void* pool = nullptr;                // one pool: (num_blocks, block_elems)
  const int32_t* pairs = nullptr;      // host pointer: (count, 2) = (src block, dst block)
  int64_t count = 0, block_elems = 0;  // block_elems = heads_kv * block_size * head_dim
  DType dtype = DType::bf16;
};

struct PagedAttentionParams {
  const void* q = nullptr;  // (total_q, heads_q, head_dim)
  void* out = nullptr;      // like q
  const void* pool_k = nullptr;
  const void* pool_v = nullptr;
  const int32_t* block_tables = nullptr;  // (batch, table_stride)
  const int32_t* context_lens = nullptr;  // (batch)
  const int32_t* cu_seqlens_q = nullptr;  // (batch + 1)
  int64_t table_stride = 0;
  int64_t batch = 0, total_q = 0, heads_q = 1, heads_kv = 1, head_dim = 0, block_size = 16;
  int64_t max_seqlen_q = 0, max_context = 0;
  int64_t split_size = 0;   // tokens per partition, a multiple of block_size
  int64_t num_splits = 1;   // ceil(max_context / split_size), at least 1
  int64_t block_q = 16;     // query tokens per work item
  float scale = 1.f;
  bool causal = true;
  DType dtype = DType::bf16;  // of q, out and the pools
  // workspace when num_splits > 1: (num_splits, total_q, heads_q) for m and l, and (.., head_dim) for acc
  float* ws_ml = nullptr;
  float* ws_acc = nullptr;
};

void kv_write_cpu(const KvWriteParams& p);
void kv_copy_blocks_cpu(const KvCopyParams& p);
void paged_attention_cpu(const PagedAttentionParams& p);
// A benchmark probe: the sum of n floats, one pass by every pool thread over its own contiguous part (a read-only
// memory stream).
double read_stream_cpu(const float* x, int64_t n);
void kv_write_cuda(const KvWriteParams& p);
void kv_copy_blocks_cuda(const KvCopyParams& p);
void paged_attention_cuda(const PagedAttentionParams& p);
// The tensor-core kernel (kv_paged_mma.cu): launches and returns true for bf16/f16 with head_dim % 8 == 0 up to 256
// and a 16-byte aligned q on a card with the shared memory it needs; returns false, launching nothing, otherwise.
// The partitions' merge stays with the caller.
bool paged_attention_mma_cuda(const PagedAttentionParams& p);

}  // namespace qwenlong
