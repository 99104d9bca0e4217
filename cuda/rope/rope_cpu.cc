// The rope CPU twin: tokens split over the pool. Pass 1 makes the cos/sin of every (token, pair) angle (f64 math,
// f32 result), pass 2 rotates every head with them. Products and sums round separately (no fused multiply-add), as
// on the GPU.
//
// The angle table depends only on the positions, theta and the rotary dims, and a model calls rope with the same
// positions four times a layer (q and k, forward and backward): the calling thread keeps its last table, with a copy
// of the positions it was made for, and reuses it when everything matches (compared in full, not hashed).
#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/common/elem.h"
#include "cuda/common/thread_pool.h"
#include "cuda/rope/rope.h"

namespace qwenlong {

namespace {

struct AngleTable {
  bool valid = false;
  bool has_positions = false;
  std::vector<int32_t> positions;
  int64_t offset = 0, tokens = 0, rotary_dim = 0;
  double theta = 0;
  std::vector<float> cos, sin;  // (tokens, R / 2)

  bool matches(const RopeParams& p) const {
    if (!valid || has_positions != (p.positions != nullptr) || tokens != p.tokens || rotary_dim != p.rotary_dim || theta != p.theta) return false;
    if (!has_positions) return offset == p.offset;
    return std::memcmp(positions.data(), p.positions, static_cast<size_t>(p.tokens) * sizeof(int32_t)) == 0;
  }
};

// Tables above this many pairs are made for the call and not kept (64 MiB of cos and sin).
constexpr int64_t kMaxKeptPairs = int64_t{1} << 23;

void fill_angles(const RopeParams& p, AngleTable& table, ThreadPool& pool, int64_t tasks) {
  const int64_t R = p.rotary_dim, pairs = R / 2;
  table.valid = false;
  table.cos.resize(static_cast<size_t>(p.tokens * pairs));
  table.sin.resize(static_cast<size_t>(p.tokens * pairs));
  std::vector<double> inv_freq(static_cast<size_t>(pairs));  // the same for every token
  for (int64_t i = 0; i < pairs; ++i) inv_freq[i] = std::pow(p.theta, -2.0 * static_cast<double>(i) / static_cast<double>(R));
  pool.parallel_for(tasks, [&](int64_t task) {
    int64_t t0, t1;
    split_range(p.tokens, tasks, task, &t0, &t1);
    for (int64_t t = t0; t < t1; ++t) {
      const double pos = p.positions ? static_cast<double>(p.positions[t]) : static_cast<double>(t + p.offset);
      for (int64_t i = 0; i < pairs; ++i) {
        const double angle = pos * inv_freq[i];
        table.cos[t * pairs + i] = static_cast<float>(std::cos(angle));
        table.sin[t * pairs + i] = static_cast<float>(std::sin(angle));
      }
    }
  });
  table.has_positions = p.positions != nullptr;
  if (table.has_positions) table.positions.assign(p.positions, p.positions + p.tokens);
  table.offset = p.offset;
  table.tokens = p.tokens;
  table.rotary_dim = R;
  table.theta = p.theta;
  table.valid = p.tokens * pairs <= kMaxKeptPairs;
}

template <typename T>
void rope_tokens(const RopeParams& p, const AngleTable& table, int64_t t0, int64_t t1) {
  const int64_t H = p.heads, D = p.head_dim, R = p.rotary_dim, pairs = R / 2;
  for (int64_t t = t0; t < t1; ++t) {
    const float* cosv = table.cos.data() + t * pairs;
    const float* sinv = table.sin.data() + t * pairs;
    for (int64_t h = 0; h < H; ++h) {
      const T* x = static_cast<const T*>(p.x) + (t * H + h) * D;
      T* out = static_cast<T*>(p.out) + (t * H + h) * D;
      for (int64_t i = 0; i < pairs; ++i) {
        const int64_t ia = p.interleaved ? 2 * i : i;
        const int64_t ib = p.interleaved ? 2 * i + 1 : i + pairs;
        const float a = to_f32(x[ia]), b = to_f32(x[ib]);
        const float c = cosv[i], s = p.inverse ? -sinv[i] : sinv[i];
        out[ia] = from_f32<T>(a * c - b * s);
        out[ib] = from_f32<T>(a * s + b * c);
      }
      for (int64_t d = R; d < D; ++d) out[d] = x[d];
    }
  }
}

}  // namespace

void rope_cpu(const RopeParams& p) {
  if (p.tokens == 0) return;
  ThreadPool& pool = ThreadPool::instance();
  const int64_t work = p.tokens * p.heads * p.head_dim;
  const int64_t tasks = work < (1 << 14) ? 1 : std::min<int64_t>(p.tokens, pool.size() * 4);
  thread_local AngleTable kept;  // the calling thread's (each JavaScript thread has its own)
  AngleTable& table = kept;       // named here: inside the pool's tasks `kept` would be the worker's own
  if (!table.matches(p)) fill_angles(p, table, pool, tasks);
  dispatch_float(p.dtype, "ops.rope", [&](auto tag) {
    using T = decltype(tag);
    pool.parallel_for(tasks, [&](int64_t task) {
      int64_t t0, t1;
      split_range(p.tokens, tasks, task, &t0, &t1);
      rope_tokens<T>(p, table, t0, t1);
    });
  });
}

}  // namespace qwenlong
