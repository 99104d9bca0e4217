// matmul with AVX-512F: a 14 × 32 register tile (28 accumulators, 2 B vectors, 1 broadcast: 31 of the 32 zmm
// registers). The packers are the AVX2 ones (8 lanes are plenty for a pass that moves each element once per
// block). Blocks: kc = 1024, so a B micro-panel (kc × 32 floats, 128 KiB) streams from L2 and C is read and written
// once per 1024 of k; an A block of mc × kc is 896 KiB (L2 is 1-2 MiB). With kc = 256 (the micro-panel sized to a
// 48 KiB L1) a Zen 4 core, whose L1 is 32 KiB, ran 1024 × 32768 × 1024 NT at 173-181 GFLOP/s on 2 threads against
// 190-201 at kc = 1024, 1024 × 1024 × 32768 at 159-161 against 184-202, 512³ at 106-149 against 160-190, and the
// policy loss at T 4096, H 1024, V 32768 in 4.8-5.2 s against 4.1-4.2 s.
#include <immintrin.h>

#include "cuda/matmul/matmul_avx512_lanes.h"
#include "cuda/matmul/matmul_x86.h"

namespace qwenlong {

namespace {

constexpr int kMr = 14, kNv = 2;

}  // namespace

const GemmKernel& gemm_kernel_avx512() {
  static const GemmKernel kernel{kMr, kNv * Avx512::width, 224, 1024, 4096, pack_vector, micro_tile<Avx512, kMr, kNv>,
                                   fma_rounds<Avx512>, 2 * kPeakChains * Avx512::width,
                                   micro_few<Avx512, kMr, kNv>, 1, finish_half_vector};
  return kernel;
}

}  // namespace qwenlong
