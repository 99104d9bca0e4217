// The CPU twin's moving parts, shared by the driver (matmul_cpu.cc) and the ISA kernels (matmul_avx2.cc,
// matmul_avx512.cc). The structure is GotoBLAS/BLIS's:
//
//   for jc over N in blocks of nc                       B block (kc × nc) lives in L3, shared by all threads
//     for pc over K in blocks of kc                     one pass per kc: C += alpha · A[:, pc] · B[pc, jc]
//       pack B[pc:pc+kc, jc:jc+nc] into nr-wide panels   (threads split the panels)
//       for ic over M in blocks of mc     (threads)    A block (mc × kc) lives in L2, packed per task
//         pack A[ic:ic+mc, pc:pc+kc] into mr-tall panels
//         for jr over nc in steps of nr                 B micro-panel (kc × nr) lives in L1
//           for ir over mc in steps of mr
//             microkernel: an mr × nr tile of C in registers, kc rank-1 updates, then C = alpha·acc + beta·C
//
// Every C element is the same sum in the same order (kc-blocks in order, k in order inside a block) whatever the
// thread count or the split, so results are bitwise identical across runs and thread counts for a fixed ISA.
#pragma once
#include <cstdint>

#include "cuda/matmul/matmul.h"

namespace qwenlong {

// One operand as the packers read it: element (x, k) of a panel source is at data[x * sx + k * sk], where x runs
// along the panel (rows of op(A), columns of op(B)) and k along the reduction.
//   op(A)(i, p): NN sx = lda, sk = 1;   trans_a: sx = 1, sk = lda
//   op(B)(p, j): NN sx = 1,   sk = ldb; trans_b: sx = ldb, sk = 1
struct PanelSource {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int64_t sx = 0, sk = 0;
};

// Packs x in [x0, x0 + nx) and k in [k0, k0 + kc) into ceil(nx / r) panels of r × kc floats, each k-major:
// out[panel * r * kc + k * r + x_in_panel]. x past nx is zero-filled; bf16/f16 are converted to f32 here.
// A kernel with k_per_slot = 2 (bf16 pairs) packs ceil(kc / 2) slots instead: slot s of x holds the bf16 elements
// k0 + 2s (low half) and k0 + 2s + 1 (high half, zero past kc) in one 32-bit word, at the same place a float
// would be. The packer still receives kc in elements; MicroFn's and MicroFewFn's kc count slots.
using PackFn = void (*)(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out);

// The register tile: acc(mr × nr) = sum over k < kc of a[k * mr + i] · b[k * nr + j] (packed panels), then for the
// m × n valid part (m ≤ mr, n ≤ nr): c[i * ldc + j] = alpha · acc + beta · c  (beta == 0: c is not read).
using MicroFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t m, int64_t n,
                         float alpha, float beta);

// m < mr rows (all of an M block's) across the panels from b, panel q at b + q · b_stride, n valid columns in all:
// the same arithmetic per element as MicroFn, in fewer calls with more accumulator chains (decode steps: M = 1-13).
using MicroFewFn = void (*)(int64_t kc, const float* a, const float* b, int64_t b_stride, float* c, int64_t ldc, int64_t m,
                            int64_t n, float alpha, float beta);

// An f16/bf16 row of C from its f32 product t (alpha already applied): c[j] = round(t[j] + beta · c[j]), c read only
// when beta != 0; the sum is a multiply then an add (no fused multiply-add), rounded to nearest even.
using FinishHalfFn = void (*)(const float* t, uint16_t* c, int64_t n, DType dtype, float beta);
void finish_half_row_scalar(const float* t, uint16_t* c, int64_t n, DType dtype, float beta);

// An ISA's kernel and the block sizes that fit it to the caches.
struct GemmKernel {
  int mr = 0, nr = 0;            // register tile
  int64_t mc = 0, kc = 0, nc = 0;  // cache blocks (mc a multiple of mr, nc of nr)
  PackFn pack = nullptr;
  MicroFn micro = nullptr;
  // Benchmarks only: `iterations` rounds of independent multiply-adds of the kernel's k step on full vectors (nothing
  // else), and the flops one round does; null where the ISA has no FMA. Gives the machine's peak as this kernel
  // sees it.
  float (*fma_rounds)(int64_t iterations) = nullptr;
  int64_t flops_per_round = 0;
  MicroFewFn micro_few = nullptr;  // optional
  int k_per_slot = 1;              // k elements per packed 32-bit slot: 1 (f32), 2 (bf16 pairs)
  FinishHalfFn finish_half = nullptr;  // finish_half_row_scalar or a vector version of it (the same bits)
};

// The readable versions: the scalar ISA uses both; vector packers fall back to pack_panels_scalar.
void pack_panels_scalar(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out);

const GemmKernel& gemm_kernel_scalar();
const GemmKernel& gemm_kernel_avx2();
const GemmKernel& gemm_kernel_avx512();
// bf16 × bf16 with vdpbf16ps (AVX512-BF16) on bf16 pairs: twice the multiply-adds per instruction of the f32 FMA.
// Only where cpu_has_avx512bf16(). Per lane and pair the instruction does two f32 fused multiply-adds, the odd k's
// first (Intel's SDM), so each element of C is an f32 FMA chain as in the widening kernels, in another order. Unlike
// them it flushes subnormals to zero: bf16 inputs, the accumulator coming in, the sum between a pair's two steps, and
// results (a product below 2^-126 contributes nothing).
const GemmKernel& gemm_kernel_avx512bf16();

// The kernel current_isa() selects for f32 (and f16) operands.
const GemmKernel& gemm_kernel_current();
// The kernel for operands of this dtype: the bf16-pair kernel for bf16 under the avx512 ISA on CPUs with
// AVX512-BF16, else gemm_kernel_current().
const GemmKernel& gemm_kernel_for(DType ab_dtype);

// GFLOP/s of the multiply-add loop of the kernel gemm_kernel_for(ab_dtype) runs (the FMA for f32, the bf16 dot
// product where bf16 has its own kernel) on every pool thread at once, measured over about `seconds` (0 for the
// scalar ISA). The denominator of the benchmarks' "fraction of peak".
double fma_peak_gflops(double seconds, DType ab_dtype = DType::f32);

}  // namespace qwenlong
