// Helpers for .cu files and CUDA-aware .cc files: the compute stream, error checks, NVTX ranges.
#pragma once
#ifdef QWENLONG_HAVE_CUDA
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <string>

#include "cuda/common/error.h"

namespace qwenlong {

// The stream every op enqueues on (created on first use, non-blocking with respect to the legacy stream).
cudaStream_t compute_stream();

inline void check_cuda(cudaError_t err, const char* op) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear a sticky launch error so later calls report their own
    throw_runtime(std::string(op) + ": CUDA error: " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
  }
}
// After a kernel launch: report a bad configuration at once (execution errors surface at the next sync).
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), op); }

// An NVTX range named after the op, so Nsight Systems shows each op launch on the timeline.
struct NvtxRange {
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
};

inline unsigned blocks_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b > max_blocks ? max_blocks : b);
}

}  // namespace qwenlong
#endif
