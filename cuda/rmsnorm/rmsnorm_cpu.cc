// The rmsnorm CPU twin. Forward: rows split evenly over the pool. Backward: rows split into a number of chunks
// that depends only on the row count; each chunk sums its dw partial, and the partials are added in chunk order,
// so dw is bitwise the same for any thread count.
#include <cmath>
#include <vector>

#include "cuda/common/isa_variants.h"
#include "cuda/common/thread_pool.h"
#include "cuda/rmsnorm/rmsnorm.h"
#define QWENLONG_ISA_NS rmsnorm_scalar
#include "cuda/rmsnorm/rmsnorm_kernels.inc"

namespace qwenlong {

void rmsnorm_forward_cpu(const RmsNormParams& p) {
  auto rows_fn = pick_isa(&rmsnorm_scalar::forward_rows, &rmsnorm_avx2::forward_rows, &rmsnorm_avx512::forward_rows);
  ThreadPool& pool = ThreadPool::instance();
  const int64_t work = p.rows * p.cols;
  int64_t tasks = work < (1 << 15) ? 1 : std::min<int64_t>(p.rows, pool.size() * 4);
  pool.parallel_for(tasks, [&](int64_t t) {
    int64_t r0, r1;
    split_range(p.rows, tasks, t, &r0, &r1);
    rows_fn(p, r0, r1);
  });
}

void rmsnorm_backward_cpu(const RmsNormParams& p) {
  auto rows_fn = pick_isa(&rmsnorm_scalar::backward_rows, &rmsnorm_avx2::backward_rows, &rmsnorm_avx512::backward_rows);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(64, p.rows / 16));
  std::vector<float> partials(p.dw ? static_cast<size_t>(chunks * p.cols) : 0, 0.f);
  ThreadPool::instance().parallel_for(chunks, [&](int64_t t) {
    int64_t r0, r1;
    split_range(p.rows, chunks, t, &r0, &r1);
    rows_fn(p, r0, r1, p.dw ? partials.data() + t * p.cols : nullptr);
  });
  if (!p.dw) return;
  for (int64_t c = 0; c < p.cols; ++c) {
    float s = p.accumulate_dw ? p.dw[c] : 0.f;
    for (int64_t t = 0; t < chunks; ++t) s += partials[t * p.cols + c];
    p.dw[c] = s;
  }
}

}  // namespace qwenlong
