// The gradNorm/clipGrad CPU twin. Pass 1: one task per 64K-element chunk sums its squares in f64. Pass 2: chunk
// sums added in order, the square root taken. Pass 3 (clip): every element scaled.
#include <cmath>
#include <vector>

#include "cuda/common/elem.h"
#include "cuda/common/thread_pool.h"
#include "cuda/grad_norm/grad_norm.h"

namespace qwenlong {

namespace {

struct Chunk {
  size_t tensor;
  int64_t begin, end;
};

std::vector<Chunk> chunks_of(const GradNormParams& p) {
  std::vector<Chunk> chunks;
  for (size_t k = 0; k < p.tensors.size(); ++k)
    for (int64_t b = 0; b < p.tensors[k].n; b += kGradNormChunk) chunks.push_back({k, b, std::min(b + kGradNormChunk, p.tensors[k].n)});
  return chunks;
}

}  // namespace

void grad_norm_cpu(const GradNormParams& p) {
  const std::vector<Chunk> chunks = chunks_of(p);
  std::vector<double> sums(chunks.size(), 0.0);
  ThreadPool& pool = ThreadPool::instance();
  // 1. per-chunk sums of squares
  pool.parallel_for(static_cast<int64_t>(chunks.size()), [&](int64_t c) {
    const Chunk& ch = chunks[static_cast<size_t>(c)];
    const GradTensor& g = p.tensors[ch.tensor];
    double s = 0.0;
    dispatch_float(g.dtype, "ops.gradNorm", [&](auto tag) {
      using T = decltype(tag);
      const T* x = static_cast<const T*>(g.data);
      for (int64_t i = ch.begin; i < ch.end; ++i) {
        const double v = to_f32(x[i]);
        s += v * v;
      }
    });
    sums[static_cast<size_t>(c)] = s;
  });
  // 2. the norm
  double total = 0.0;
  for (double s : sums) total += s;
  const float norm = static_cast<float>(std::sqrt(total));
  *p.norm = norm;
  if (!p.clip) return;
  // 3. scale (skipped when the norm is within bounds, as the scale is then exactly 1)
  const double coef = static_cast<double>(p.max_norm) / (static_cast<double>(norm) + 1e-6);
  if (!(coef < 1.0)) return;
  const float scale = static_cast<float>(coef);
  pool.parallel_for(static_cast<int64_t>(chunks.size()), [&](int64_t c) {
    const Chunk& ch = chunks[static_cast<size_t>(c)];
    const GradTensor& g = p.tensors[ch.tensor];
    dispatch_float(g.dtype, "ops.clipGrad", [&](auto tag) {
      using T = decltype(tag);
      T* x = static_cast<T*>(g.data);
      for (int64_t i = ch.begin; i < ch.end; ++i) x[i] = from_f32<T>(to_f32(x[i]) * scale);
    });
  });
}

}  // namespace qwenlong
