// rope: rotary position embedding of queries or keys, and its backward (the rotation by the opposite angle).
//   x, out: (T, H, D) contiguous, one dtype (f32, f16, bf16)   positions: (T) i32, or null for t + offset
//   For each token t at position p, head h and pair i < R/2 (R = rotary_dim <= D, even):
//     angle = p * theta^(-2i / R)     (computed in f64, rounded to f32 cos and sin)
//     interleaved pairs (llama2.c, Meta): (2i, 2i+1);   half-split pairs (Hugging Face): (i, i + R/2)
//     (a, b) -> (a cos - b sin, a sin + b cos);   dims >= R are copied.
//   backward: the same with sin negated (a rotation's inverse is its transpose).
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct RopeParams {
  const void* x = nullptr;
  void* out = nullptr;
  const int32_t* positions = nullptr;  // optional
  int64_t offset = 0;                  // used when positions is null
  int64_t tokens = 0, heads = 0, head_dim = 0, rotary_dim = 0;
  double theta = 10000.0;
  bool interleaved = true;
  bool inverse = false;  // backward
  DType dtype = DType::f32;
};

void rope_cpu(const RopeParams& p);
void rope_cuda(const RopeParams& p);

}  // namespace qwenlong
