// The embedding CPU twin. Forward: rows copied, tokens split over the pool. Backward: the columns are split over
// the pool and every task walks all tokens in order, so each dtable element is summed in token order whatever
// the thread count (bitwise deterministic, no atomics).
#include <cstring>
#include <string>

#include "cuda/common/elem.h"
#include "cuda/common/error.h"
#include "cuda/common/thread_pool.h"
#include "cuda/embedding/embedding.h"

namespace qwenlong {

static void check_ids(const EmbeddingParams& p, const char* op) {
  for (int64_t t = 0; t < p.tokens; ++t) {
    if (p.ids[t] < 0 || p.ids[t] >= p.vocab)
      throw_range(std::string(op) + ": ids[" + std::to_string(t) + "] = " + std::to_string(p.ids[t]) + " is outside [0, " +
                  std::to_string(p.vocab) + ")");
  }
}

void embedding_forward_cpu(const EmbeddingParams& p) {
  check_ids(p, "ops.embedding");
  const size_t row_bytes = static_cast<size_t>(p.dim) * dtype_size(p.dtype);
  ThreadPool& pool = ThreadPool::instance();
  const int64_t tasks = p.tokens * static_cast<int64_t>(row_bytes) < (1 << 18) ? 1 : std::min<int64_t>(p.tokens, pool.size() * 4);
  pool.parallel_for(tasks, [&](int64_t task) {
    int64_t t0, t1;
    split_range(p.tokens, tasks, task, &t0, &t1);
    for (int64_t t = t0; t < t1; ++t)
      std::memcpy(static_cast<char*>(p.out) + t * row_bytes, static_cast<const char*>(p.table) + p.ids[t] * row_bytes, row_bytes);
  });
}

void embedding_backward_cpu(const EmbeddingParams& p) {
  check_ids(p, "ops.embeddingBackward");
  ThreadPool& pool = ThreadPool::instance();
  const int64_t C = p.dim;
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(pool.size() * 4, C / 16));
  dispatch_float(p.dtype, "ops.embeddingBackward", [&](auto tag) {
    using T = decltype(tag);
    const T* dout = static_cast<const T*>(p.dout);
    pool.parallel_for(tasks, [&](int64_t task) {
      int64_t c0, c1;
      split_range(C, tasks, task, &c0, &c1);
      if (!p.accumulate)
        for (int64_t v = 0; v < p.vocab; ++v) std::memset(p.dtable + v * C + c0, 0, static_cast<size_t>(c1 - c0) * sizeof(float));
      for (int64_t t = 0; t < p.tokens; ++t) {
        float* row = p.dtable + static_cast<int64_t>(p.ids[t]) * C;
        const T* src = dout + t * C;
        for (int64_t c = c0; c < c1; ++c) row[c] += to_f32(src[c]);
      }
    });
  });
}

}  // namespace qwenlong
