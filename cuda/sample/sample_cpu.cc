// CPU sampling of host logits: see sample.h. Each row is one task with its own scratch; the arithmetic and its order
// are those of the TypeScript reference, so both draw the same token from the same uniform.
#include "cuda/sample/sample.h"

#include <cmath>
#include <limits>
#include <vector>

#include "cuda/common/thread_pool.h"

namespace qwenlong {

void sample_rows_cpu(const SampleParams& p) {
  const int64_t V = p.vocab;
  const double inv = p.temperature > 0 ? 1.0 / p.temperature : 1.0;
  ThreadPool::instance().parallel_for(p.count, [&](int64_t task) {
    const float* x = p.logits + static_cast<int64_t>(p.rows[task]) * V;
    thread_local std::vector<double> prob;
    if (static_cast<int64_t>(prob.size()) < V) prob.resize(static_cast<size_t>(V));
    double* q = prob.data();
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < V; ++i) {
      const double v = x[i] * inv;
      max = std::isnan(v) || std::isnan(max) ? std::numeric_limits<double>::quiet_NaN() : (v > max ? v : max);
    }
    double z = 0;
    for (int64_t i = 0; i < V; ++i) z += q[i] = std::exp(x[i] * inv - max);
    const double lse = max + std::log(z);
    double entropy = 0;
    for (int64_t i = 0; i < V; ++i) {
      const double pi = (q[i] /= z);
      if (pi > 0) entropy += pi * (lse - x[i] * inv);
    }
    int64_t token = 0;
    if (p.temperature == 0) {
      for (int64_t i = 1; i < V; ++i)
        if (x[i] > x[token]) token = i;
    } else {
      double total = 0;
      for (int64_t i = 0; i < V; ++i) total += q[i];
      double r = p.uniforms[task] * total;
      token = V - 1;
      for (int64_t i = 0; i < V; ++i) {
        r -= q[i];
        if (r < 0) {
          token = i;
          break;
        }
      }
    }
    p.tokens[task] = static_cast<int32_t>(token);
    p.logprobs[task] = std::log(q[token]);
    p.entropies[task] = entropy;
  });
}

}  // namespace qwenlong
