// embedding on the GPU (shapes in embedding.h).
// Forward: one block per token copies its row; an out-of-range id writes zeros and raises a device flag, which the
// launcher reads back (one 4-byte copy, a stream sync) to throw.
// Backward: deterministic without atomics: one thread per column walks the tokens in order (the same summation
// order as the CPU twin, so the two agree bit for bit).
#include <memory>
#include <string>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/embedding/embedding.h"

namespace qwenlong {

namespace {

template <typename T>
__global__ void embedding_forward_kernel(const int32_t* __restrict__ ids, const T* __restrict__ table, T* __restrict__ out, int64_t vocab,
                                         int64_t dim, int* __restrict__ bad) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  if (!ok && threadIdx.x == 0) atomicExch(bad, 1);
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) out[t * dim + c] = ok ? table[static_cast<int64_t>(id) * dim + c] : from_f32<T>(0.f);
}

__global__ void check_ids_kernel(const int32_t* __restrict__ ids, int64_t tokens, int64_t vocab, int* __restrict__ bad) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < tokens; t += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (ids[t] < 0 || ids[t] >= vocab) atomicExch(bad, 1);
}

template <typename T>
__global__ void embedding_backward_kernel(const int32_t* __restrict__ ids, const T* __restrict__ dout, float* __restrict__ dtable,
                                          int64_t tokens, int64_t vocab, int64_t dim, bool accumulate) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= dim) return;
  if (!accumulate)
    for (int64_t v = 0; v < vocab; ++v) dtable[v * dim + c] = 0.f;
  for (int64_t t = 0; t < tokens; ++t) dtable[static_cast<int64_t>(ids[t]) * dim + c] += to_f32(dout[t * dim + c]);
}

// A zeroed device flag, and a function that reads it back (synchronizing the stream) and throws if it was raised.
struct BadIdFlag {
  std::shared_ptr<Storage> storage = Storage::allocate(Device::cuda, sizeof(int));
  int* ptr() { return static_cast<int*>(storage->data()); }
  BadIdFlag() { check_cuda(cudaMemsetAsync(ptr(), 0, sizeof(int), compute_stream()), "embedding"); }
  void check(const char* op, int64_t vocab) {
    int bad = 0;
    check_cuda(cudaMemcpyAsync(&bad, ptr(), sizeof(int), cudaMemcpyDeviceToHost, compute_stream()), op);
    check_cuda(cudaStreamSynchronize(compute_stream()), op);
    if (bad) throw_range(std::string(op) + ": an id in 'ids' is outside [0, " + std::to_string(vocab) + ")");
  }
};

}  // namespace

void embedding_forward_cuda(const EmbeddingParams& p) {
  if (p.tokens == 0) return;
  NvtxRange range("qwenlong.embedding");
  BadIdFlag flag;
  dispatch_float_cuda(p.dtype, "ops.embedding", [&](auto tag) {
    using T = decltype(tag);
    embedding_forward_kernel<T><<<static_cast<unsigned>(p.tokens), 128, 0, compute_stream()>>>(
        p.ids, static_cast<const T*>(p.table), static_cast<T*>(p.out), p.vocab, p.dim, flag.ptr());
  });
  check_launch("ops.embedding");
  flag.check("ops.embedding", p.vocab);
}

void embedding_backward_cuda(const EmbeddingParams& p) {
  NvtxRange range("qwenlong.embeddingBackward");
  if (p.tokens > 0) {  // validate first: the scatter must not write outside dtable
    BadIdFlag flag;
    check_ids_kernel<<<blocks_for(p.tokens, 256, 1024), 256, 0, compute_stream()>>>(p.ids, p.tokens, p.vocab, flag.ptr());
    check_launch("ops.embeddingBackward");
    flag.check("ops.embeddingBackward", p.vocab);
  }
  dispatch_float_cuda(p.dtype, "ops.embeddingBackward", [&](auto tag) {
    using T = decltype(tag);
    embedding_backward_kernel<T><<<blocks_for(p.dim, 128), 128, 0, compute_stream()>>>(p.ids, static_cast<const T*>(p.dout), p.dtable,
                                                                                      p.tokens, p.vocab, p.dim, p.accumulate);
  });
  check_launch("ops.embeddingBackward");
}

}  // namespace qwenlong
