// The swiglu CPU twin: elements split evenly over the pool.
#include "cuda/common/isa_variants.h"
#include "cuda/common/thread_pool.h"
#include "cuda/swiglu/swiglu.h"
#define QWENLONG_ISA_NS swiglu_scalar
#include "cuda/swiglu/swiglu_kernels.inc"

namespace qwenlong {

namespace {

template <typename Fn>
void run_split(int64_t n, Fn&& fn) {
  ThreadPool& pool = ThreadPool::instance();
  const int64_t tasks = n < (1 << 14) ? 1 : std::min<int64_t>(pool.size() * 4, n >> 12);
  pool.parallel_for(tasks, [&](int64_t t) {
    int64_t b, e;
    split_range(n, tasks, t, &b, &e);
    fn(b, e);
  });
}

}  // namespace

void swiglu_forward_cpu(const SwigluParams& p) {
  auto fn = pick_isa(&swiglu_scalar::forward_range, &swiglu_avx2::forward_range, &swiglu_avx512::forward_range);
  run_split(p.n, [&](int64_t b, int64_t e) { fn(p, b, e); });
}

void swiglu_backward_cpu(const SwigluParams& p) {
  auto fn = pick_isa(&swiglu_scalar::backward_range, &swiglu_avx2::backward_range, &swiglu_avx512::backward_range);
  run_split(p.n, [&](int64_t b, int64_t e) { fn(p, b, e); });
}

}  // namespace qwenlong
