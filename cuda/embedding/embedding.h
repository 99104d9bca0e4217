// embedding: token lookup, and its backward (a scatter-add, deterministic).
//   ids: (T) i32 in [0, V)   table: (V, C) f32/f16/bf16   out: (T, C) table's dtype
//   out[t, :] = table[ids[t], :]
//   backward: dtable[v, :] = (accumulate ? dtable[v, :] : 0) + sum over t with ids[t] == v, in increasing t, of dout[t, :]
//   dout: (T, C) f32/f16/bf16   dtable: (V, C) f32
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct EmbeddingParams {
  const int32_t* ids = nullptr;
  const void* table = nullptr;
  void* out = nullptr;
  const void* dout = nullptr;
  float* dtable = nullptr;
  bool accumulate = false;
  int64_t tokens = 0, vocab = 0, dim = 0;
  DType dtype = DType::f32;  // of table/out (forward) or dout (backward)
};

void embedding_forward_cpu(const EmbeddingParams& p);
void embedding_backward_cpu(const EmbeddingParams& p);
// The CUDA versions check the ids on the device and throw a RangeError (after a stream sync) if one is out of range.
void embedding_forward_cuda(const EmbeddingParams& p);
void embedding_backward_cuda(const EmbeddingParams& p);

}  // namespace qwenlong
