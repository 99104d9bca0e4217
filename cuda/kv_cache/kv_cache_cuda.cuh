// Pieces the paged-attention CUDA kernels share (kv_cache.cu's SIMT kernels, kv_paged_mma.cu's tensor-core one).
#pragma once
#include <algorithm>

#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"
#include "cuda/kv_cache/kv_cache.h"

namespace qwenlong {
namespace paged {

// Element d of a finished row (query `row`, query head h) of partition `split`: with one partition the output
// acc / l (0 for a row that saw no key), else the partition's (m, l) and acc in the workspace for the merge kernel.
template <typename T>
__device__ __forceinline__ void store_row(const PagedAttentionParams& p, int64_t split, int64_t row, int64_t h, int64_t d,
                                          float m, float l, float acc) {
  if (p.num_splits == 1) {
    static_cast<T*>(p.out)[(row * p.heads_q + h) * p.head_dim + d] = from_f32<T>(l > 0.f ? acc / l : 0.f);
    return;
  }
  const int64_t slot = (split * p.total_q + row) * p.heads_q + h;
  if (d == 0) {
    p.ws_ml[2 * slot] = m;
    p.ws_ml[2 * slot + 1] = l;
  }
  p.ws_acc[slot * p.head_dim + d] = acc;
}

// Opts `kernel` in to `wanted` bytes of dynamic shared memory, or to what the card allows a block if less, with the
// carveout set to favour shared memory; returns the bytes opted in.
template <typename Kernel>
int opt_in_smem(Kernel kernel, int wanted) {
  int dev = 0, optin = 0;
  check_cuda(cudaGetDevice(&dev), "ops.pagedAttention");
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "ops.pagedAttention");
  const int bytes = std::min(optin, wanted);
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), "ops.pagedAttention");
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, 100), "ops.pagedAttention");
  return bytes;
}

}  // namespace paged
}  // namespace qwenlong
