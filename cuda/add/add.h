// add: the scaled elementwise sum, used for residual adds and as the smallest op that goes through the whole path.
//   a, b, out: (n) contiguous, one dtype (f32, f16 or bf16; math in f32)
//   out = alpha * a + beta * b           (b == nullptr: out = alpha * a, i.e. scale)
// Products and the sum round separately (no fused multiply-add), so every ISA and the GPU give the same bits.
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct AddParams {
  const void* a = nullptr;
  const void* b = nullptr;  // optional
  void* out = nullptr;
  int64_t n = 0;
  float alpha = 1.f;
  float beta = 1.f;
  DType dtype = DType::f32;
};

void add_cpu(const AddParams& p);
void add_cuda(const AddParams& p);

// ISA kernels over the element range [begin, end); the dispatcher in add_cpu.cc picks one.
void add_range_scalar(const AddParams& p, int64_t begin, int64_t end);
void add_range_avx2(const AddParams& p, int64_t begin, int64_t end);
void add_range_avx512(const AddParams& p, int64_t begin, int64_t end);

}  // namespace qwenlong
