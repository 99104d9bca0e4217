// matmul: the strided, batched matrix product every forward and backward pass runs on.
//   op(A): (M, K)  stored (M, K) row-major, or (K, M) when trans_a (A^T is used)
//   op(B): (K, N)  stored (K, N) row-major, or (N, K) when trans_b
//   C:     (M, N)  row-major
//   for each batch index z:  C_z = alpha * op(A_z) · op(B_z) + beta * C_z
// Layouts: NN (forward x·W), NT (x·W^T, the LM head), TN (dW = x^T·dy). Accumulation is in f32; A and B share a
// dtype (f32, f16 or bf16); C is f32 or the inputs' dtype. With beta == 0, C is written without being read
// (NaN or garbage in C does not leak into the result).
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct MatmulParams {
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  DType ab_dtype = DType::f32;  // dtype of A and B
  DType c_dtype = DType::f32;   // dtype of C: f32 or ab_dtype
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;             // row strides of the stored matrices, in elements
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // batch strides in elements (0: the same matrix for every batch)
  bool trans_a = false, trans_b = false;
  float alpha = 1.f, beta = 0.f;
};

void matmul_cpu(const MatmulParams& p);
void matmul_cuda(const MatmulParams& p);

}  // namespace qwenlong
