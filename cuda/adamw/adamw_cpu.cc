// The adamw CPU twin: elements split evenly over the pool (each element's update is independent).
#include <algorithm>
#include <cmath>

#include "cuda/adamw/adamw.h"
#include "cuda/common/isa_variants.h"
#include "cuda/common/thread_pool.h"
#define QWENLONG_ISA_NS adamw_scalar
#include "cuda/adamw/adamw_kernels.inc"

namespace qwenlong {

AdamwFactors adamw_factors(const AdamwParams& p) {
  const double t = static_cast<double>(p.step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), t);
  return AdamwFactors{static_cast<float>(1.0 - static_cast<double>(p.lr) * p.weight_decay), static_cast<float>(p.lr / bc1),
                      static_cast<float>(std::sqrt(bc2))};
}

void adamw_cpu(const AdamwParams& p) {
  auto fn = pick_isa(&adamw_scalar::update_range, &adamw_avx2::update_range, &adamw_avx512::update_range);
  ThreadPool& pool = ThreadPool::instance();
  const int64_t tasks = p.n < (1 << 15) ? 1 : std::min<int64_t>(pool.size() * 4, p.n >> 13);
  pool.parallel_for(tasks, [&](int64_t t) {
    int64_t b, e;
    split_range(p.n, tasks, t, &b, &e);
    fn(p, b, e);
  });
}

}  // namespace qwenlong
