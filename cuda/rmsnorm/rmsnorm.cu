// rmsnorm on the GPU (shapes in rmsnorm.h).
// Forward: one block per row; pass 1 sums squares (block reduction), pass 2 writes y.
// Backward: one block per row for dx; dw is deterministic: pass 1 writes one dw partial per block-chunk of rows,
// pass 2 sums the partials of each column in chunk order.
#include <algorithm>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/rmsnorm/rmsnorm.h"

namespace qwenlong {

namespace {

constexpr int kThreads = 256;
constexpr int kChunks = 128;  // row chunks for the dw partials

template <typename T>
__global__ void rmsnorm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y, float* __restrict__ rrms,
                                       int64_t cols, float eps) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = to_f32(xr[c]);
    ss += v * v;
  }
  ss = block_sum(ss, shared);
  const float r = rsqrtf(ss / static_cast<float>(cols) + eps);
  if (threadIdx.x == 0) rrms[row] = r;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = from_f32<T>((to_f32(xr[c]) * r) * to_f32(w[c]));
}

// dx for rows [chunk_begin, chunk_end) of this block's chunk, plus the chunk's dw partial (if wanted).
template <typename T>
__global__ void rmsnorm_backward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ dy,
                                        const float* __restrict__ rrms, T* __restrict__ dx, float* __restrict__ dw_partials,
                                        int64_t rows, int64_t cols) {
  __shared__ float shared[32];
  const int64_t chunk = blockIdx.x, chunks = gridDim.x;
  const int64_t r0 = rows * chunk / chunks, r1 = rows * (chunk + 1) / chunks;
  float* partial = dw_partials ? dw_partials + chunk * cols : nullptr;
  if (partial)
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) partial[c] = 0.f;
  for (int64_t row = r0; row < r1; ++row) {
    const T* xr = x + row * cols;
    const T* dyr = dy + row * cols;
    T* dxr = dx + row * cols;
    const float r = rrms[row];
    float acc = 0.f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) acc += (to_f32(dyr[c]) * to_f32(w[c])) * to_f32(xr[c]);
    const float k = (r * r) * (block_sum(acc, shared) / static_cast<float>(cols));
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xv = to_f32(xr[c]), dyv = to_f32(dyr[c]);
      dxr[c] = from_f32<T>(r * (dyv * to_f32(w[c]) - xv * k));
      if (partial) partial[c] += dyv * (xv * r);  // each column belongs to one thread: no race
    }
  }
}

__global__ void sum_partials_kernel(const float* __restrict__ partials, float* __restrict__ dw, int64_t chunks, int64_t cols, bool accumulate) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float s = accumulate ? dw[c] : 0.f;
  for (int64_t t = 0; t < chunks; ++t) s += partials[t * cols + c];
  dw[c] = s;
}

}  // namespace

void rmsnorm_forward_cuda(const RmsNormParams& p) {
  if (p.rows == 0) return;
  NvtxRange range("qwenlong.rmsNorm");
  dispatch_float_cuda(p.dtype, "ops.rmsNorm", [&](auto t) {
    using T = decltype(t);
    rmsnorm_forward_kernel<T><<<static_cast<unsigned>(p.rows), kThreads, 0, compute_stream()>>>(
        static_cast<const T*>(p.x), static_cast<const T*>(p.w), static_cast<T*>(p.y), p.rrms, p.cols, p.eps);
  });
  check_launch("ops.rmsNorm");
}

void rmsnorm_backward_cuda(const RmsNormParams& p) {
  if (p.rows == 0 && !p.dw) return;
  NvtxRange range("qwenlong.rmsNormBackward");
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(kChunks, p.rows));
  std::shared_ptr<Storage> scratch;
  if (p.dw) scratch = Storage::allocate(Device::cuda, static_cast<size_t>(chunks * p.cols) * sizeof(float));
  float* partials = scratch ? static_cast<float*>(scratch->data()) : nullptr;
  if (p.rows > 0) {
    dispatch_float_cuda(p.dtype, "ops.rmsNormBackward", [&](auto t) {
      using T = decltype(t);
      rmsnorm_backward_kernel<T><<<static_cast<unsigned>(chunks), kThreads, 0, compute_stream()>>>(
          static_cast<const T*>(p.x), static_cast<const T*>(p.w), static_cast<const T*>(p.dy), p.rrms_in, static_cast<T*>(p.dx),
          partials, p.rows, p.cols);
    });
    check_launch("ops.rmsNormBackward");
  }
  if (p.dw) {
    sum_partials_kernel<<<blocks_for(p.cols, 256), 256, 0, compute_stream()>>>(partials, p.dw, p.rows > 0 ? chunks : 0, p.cols, p.accumulate_dw);
    check_launch("ops.rmsNormBackward");
  }
  // The scratch block returns to the cache here; the next kernel that reuses it runs after these on the stream.
}

}  // namespace qwenlong
