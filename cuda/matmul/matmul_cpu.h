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
using PackFn = void (*)(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out);

// The register tile: acc(mr × nr) = sum over k < kc of a[k * mr + i] · b[k * nr + j] (packed panels), then for the
// m × n valid part (m ≤ mr, n ≤ nr): c[i * ldc + j] = alpha · acc + beta · c  (beta == 0: c is not read).
using MicroFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t m, int64_t n,
                         float alpha, float beta);

// m < mr rows (all of an M block's) across the panels from b, panel q at b + q · b_stride, n valid columns in all:
// the same arithmetic per element as MicroFn, in fewer calls with more accumulator chains (decode steps: M = 1-13).
using MicroFewFn = void (*)(int64_t kc, const float* a, const float* b, int64_t b_stride, float* c, int64_t ldc, int64_t m,
                            int64_t n, float alpha, float beta);

// An ISA's kernel and the block sizes that fit it to the caches.
struct GemmKernel {
  int mr = 0, nr = 0;            // register tile
  int64_t mc = 0, kc = 0, nc = 0;  // cache blocks (mc a multiple of mr, nc of nr)
  PackFn pack = nullptr;
  MicroFn micro = nullptr;
  // Benchmarks only: `iterations` rounds of independent fused multiply-adds on full vectors (nothing else), and
  // the flops one round does; null where the ISA has no FMA. Gives the machine's FMA peak as this kernel sees it.
  float (*fma_rounds)(int64_t iterations) = nullptr;
  int64_t flops_per_round = 0;
  MicroFewFn micro_few = nullptr;  // optional
};

// The readable versions: the scalar ISA uses both; vector packers fall back to pack_panels_scalar.
void pack_panels_scalar(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out);

const GemmKernel& gemm_kernel_scalar();
const GemmKernel& gemm_kernel_avx2();
const GemmKernel& gemm_kernel_avx512();

// The kernel current_isa() selects.
const GemmKernel& gemm_kernel_current();

// GFLOP/s of the current ISA's FMA loop on every pool thread at once, measured over about `seconds` (0 for the
// scalar ISA). The denominator of the benchmarks' "fraction of peak".
double fma_peak_gflops(double seconds);

}  // namespace qwenlong
