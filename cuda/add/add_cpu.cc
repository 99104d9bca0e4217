// The CPU twin of add: the spec. Pass 1 splits the elements into one contiguous range per thread; pass 2 runs
// the ISA kernel on each range.
#include "cuda/add/add.h"

#include "cuda/common/cpu_features.h"
#include "cuda/common/thread_pool.h"

namespace qwenlong {

void add_range_scalar(const AddParams& p, int64_t begin, int64_t end) {
  const bool has_b = p.b != nullptr;
  switch (p.dtype) {
    case DType::f32: {
      const float* a = static_cast<const float*>(p.a);
      const float* b = static_cast<const float*>(p.b);
      float* out = static_cast<float*>(p.out);
      for (int64_t i = begin; i < end; ++i) {
        float ya = p.alpha * a[i];
        out[i] = has_b ? ya + p.beta * b[i] : ya;
      }
      break;
    }
    case DType::f16:
    case DType::bf16: {
      const uint16_t* a = static_cast<const uint16_t*>(p.a);
      const uint16_t* b = static_cast<const uint16_t*>(p.b);
      uint16_t* out = static_cast<uint16_t*>(p.out);
      for (int64_t i = begin; i < end; ++i) {
        float ya = p.alpha * half_to_f32(a[i], p.dtype);
        float y = has_b ? ya + p.beta * half_to_f32(b[i], p.dtype) : ya;
        out[i] = f32_to_half(y, p.dtype);
      }
      break;
    }
    default:
      break;  // the binding admits float dtypes only
  }
}

void add_cpu(const AddParams& p) {
  void (*kernel)(const AddParams&, int64_t, int64_t) = add_range_scalar;
  switch (current_isa()) {
    case Isa::avx512: kernel = add_range_avx512; break;
    case Isa::avx2: kernel = add_range_avx2; break;
    case Isa::scalar: break;
  }
  // Below ~64K elements the wake-up of the pool costs more than the work.
  const int64_t min_per_task = 1 << 16;
  ThreadPool& pool = ThreadPool::instance();
  int64_t tasks = p.n / min_per_task;
  if (tasks > pool.size()) tasks = pool.size();
  if (tasks <= 1) {
    kernel(p, 0, p.n);
    return;
  }
  pool.parallel_for(tasks, [&](int64_t t) {
    int64_t begin, end;
    split_range(p.n, tasks, t, &begin, &end);
    kernel(p, begin, end);
  });
}

}  // namespace qwenlong
