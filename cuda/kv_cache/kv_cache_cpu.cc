// The paged KV cache on the CPU: slot writes and block copies (plain copies), and paged attention (the ISA builds of
// kv_cache_kernels.inc).
#include <cstring>
#include <vector>

#include "cuda/common/isa_variants.h"
#include "cuda/common/thread_pool.h"
#include "cuda/kv_cache/kv_cache.h"
#define QWENLONG_ISA_NS kv_cache_scalar
#include "cuda/kv_cache/kv_cache_kernels.inc"

namespace qwenlong {

namespace kv_cache_avx2 { void paged_attention(const PagedAttentionParams& p); }
namespace kv_cache_avx512 { void paged_attention(const PagedAttentionParams& p); }
#ifndef QWENLONG_NO_AVX512BF16
namespace kv_cache_avx512bf16 { void paged_attention(const PagedAttentionParams& p); }
#endif

void kv_write_cpu(const KvWriteParams& p) {
  const size_t esize = dtype_size(p.dtype), row = static_cast<size_t>(p.head_dim) * esize;
  const auto* k = static_cast<const uint8_t*>(p.k);
  const auto* v = static_cast<const uint8_t*>(p.v);
  auto* pk = static_cast<uint8_t*>(p.pool_k);
  auto* pv = static_cast<uint8_t*>(p.pool_v);
  for (int64_t i = 0; i < p.n; ++i) {
    const int64_t block = p.slots[i] / p.block_size, offset = p.slots[i] % p.block_size;
    for (int64_t h = 0; h < p.heads_kv; ++h) {
      const size_t dst = static_cast<size_t>((block * p.heads_kv + h) * p.block_size + offset) * row;
      const size_t src = static_cast<size_t>(i * p.heads_kv + h) * row;
      std::memcpy(pk + dst, k + src, row);
      std::memcpy(pv + dst, v + src, row);
    }
  }
}

void kv_copy_blocks_cpu(const KvCopyParams& p) {
  const size_t bytes = static_cast<size_t>(p.block_elems) * dtype_size(p.dtype);
  auto* pool = static_cast<uint8_t*>(p.pool);
  for (int64_t i = 0; i < p.count; ++i)
    std::memmove(pool + static_cast<size_t>(p.pairs[2 * i + 1]) * bytes, pool + static_cast<size_t>(p.pairs[2 * i]) * bytes, bytes);
}

double read_stream_cpu(const float* x, int64_t n) {
  ThreadPool& pool = ThreadPool::instance();
  const int64_t parts = pool.size();
  std::vector<double> sums(static_cast<size_t>(parts), 0.0);
  pool.parallel_for(parts, [&](int64_t part) {
    const int64_t lo = n * part / parts, hi = n * (part + 1) / parts;
    float acc[16] = {};
    int64_t i = lo;
    for (; i + 16 <= hi; i += 16)
      for (int e = 0; e < 16; ++e) acc[e] += x[i + e];
    double total = 0;
    for (; i < hi; ++i) total += x[i];
    for (float a : acc) total += a;
    sums[static_cast<size_t>(part)] = total;
  });
  double total = 0;
  for (double v : sums) total += v;
  return total;
}

void paged_attention_cpu(const PagedAttentionParams& p) {
  // bf16 caches: q . k and P V by the BF16 dot-product instructions where the CPU has them (the same algorithm;
  // scores summed in another order, P rounded to bf16 for P V as the CUDA tensor-core kernels do).
#ifndef QWENLONG_NO_AVX512BF16
  if (p.dtype == DType::bf16 && current_isa() == Isa::avx512 && cpu_has_avx512bf16()) return kv_cache_avx512bf16::paged_attention(p);
#endif
  pick_isa(&kv_cache_scalar::paged_attention, &kv_cache_avx2::paged_attention, &kv_cache_avx512::paged_attention)(p);
}

}  // namespace qwenlong
