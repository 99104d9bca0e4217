// cast on the CPU: element by element through f32, in parallel chunks.
#include <cstring>

#include "cuda/cast/cast.h"
#include "cuda/common/elem.h"
#include "cuda/common/thread_pool.h"

namespace qwenlong {

namespace {

template <typename From, typename To>
void cast_range(const CastParams& p, int64_t begin, int64_t end) {
  const From* x = static_cast<const From*>(p.x);
  To* out = static_cast<To*>(p.out);
  for (int64_t i = begin; i < end; ++i) out[i] = from_f32<To>(to_f32(x[i]));
}

}  // namespace

void cast_cpu(const CastParams& p) {
  if (p.n == 0) return;
  if (p.from == p.to) {
    std::memmove(p.out, p.x, static_cast<size_t>(p.n) * dtype_size(p.from));
    return;
  }
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (p.n + kChunk - 1) / kChunk;
  auto run = [&](auto from_tag, auto to_tag) {
    using From = decltype(from_tag);
    using To = decltype(to_tag);
    ThreadPool::instance().parallel_for(chunks, [&](int64_t c) { cast_range<From, To>(p, c * kChunk, std::min(p.n, (c + 1) * kChunk)); });
  };
  dispatch_float(p.from, "ops.cast", [&](auto from_tag) { dispatch_float(p.to, "ops.cast", [&](auto to_tag) { run(from_tag, to_tag); }); });
}

}  // namespace qwenlong
