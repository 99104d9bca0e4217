// The rope CPU twin: tokens split over the pool; per token, pass 1 makes the cos/sin of each pair's angle (f64
// math, f32 result), pass 2 rotates every head with them. Products and sums round separately (no fused
// multiply-add), as on the GPU.
#include <cmath>
#include <vector>

#include "cuda/common/elem.h"
#include "cuda/common/thread_pool.h"
#include "cuda/rope/rope.h"

namespace qwenlong {

namespace {

template <typename T>
void rope_tokens(const RopeParams& p, int64_t t0, int64_t t1) {
  const int64_t H = p.heads, D = p.head_dim, R = p.rotary_dim, pairs = R / 2;
  std::vector<float> cosv(static_cast<size_t>(pairs)), sinv(static_cast<size_t>(pairs));
  std::vector<double> inv_freq(static_cast<size_t>(pairs));  // the same for every token: made once
  for (int64_t i = 0; i < pairs; ++i) inv_freq[i] = std::pow(p.theta, -2.0 * static_cast<double>(i) / static_cast<double>(R));
  for (int64_t t = t0; t < t1; ++t) {
    const double pos = p.positions ? static_cast<double>(p.positions[t]) : static_cast<double>(t + p.offset);
    // 1. the angles of this token
    for (int64_t i = 0; i < pairs; ++i) {
      const double angle = pos * inv_freq[i];
      cosv[i] = static_cast<float>(std::cos(angle));
      sinv[i] = static_cast<float>(p.inverse ? -std::sin(angle) : std::sin(angle));
    }
    // 2. rotate each head
    for (int64_t h = 0; h < H; ++h) {
      const T* x = static_cast<const T*>(p.x) + (t * H + h) * D;
      T* out = static_cast<T*>(p.out) + (t * H + h) * D;
      for (int64_t i = 0; i < pairs; ++i) {
        const int64_t ia = p.interleaved ? 2 * i : i;
        const int64_t ib = p.interleaved ? 2 * i + 1 : i + pairs;
        const float a = to_f32(x[ia]), b = to_f32(x[ib]);
        const float c = cosv[i], s = sinv[i];
        out[ia] = from_f32<T>(a * c - b * s);
        out[ib] = from_f32<T>(a * s + b * c);
      }
      for (int64_t d = R; d < D; ++d) out[d] = x[d];
    }
  }
}

}  // namespace

void rope_cpu(const RopeParams& p) {
  ThreadPool& pool = ThreadPool::instance();
  const int64_t work = p.tokens * p.heads * p.head_dim;
  const int64_t tasks = work < (1 << 14) ? 1 : std::min<int64_t>(p.tokens, pool.size() * 4);
  dispatch_float(p.dtype, "ops.rope", [&](auto tag) {
    using T = decltype(tag);
    pool.parallel_for(tasks, [&](int64_t task) {
      int64_t t0, t1;
      split_range(p.tokens, tasks, task, &t0, &t1);
      rope_tokens<T>(p, t0, t1);
    });
  });
}

}  // namespace qwenlong
