// matmul on Hopper (sm_90a): C = alpha * op(A) · op(B) + beta * C for f16/bf16 inputs with f32 accumulation, every
// layout (NT: logits = hidden · W^T; NN: d_hidden = d_logits · W; TN: d_W = d_logits^T · hidden). Warpgroup MMA
// (wgmma) straight from shared memory, tiles brought in by the tensor copy engine (TMA):
//   - block tile 128 x BN x 64 (BN = 256 by default, 128 on request), 3 warpgroups: warpgroup 0 is the producer (one
//     thread issues the copies), warpgroups 1 and 2 each compute 64 rows x BN with m64nBNk16 instructions;
//   - a ring of STAGES shared-memory stages, each an A tile (128 x 64) and a B tile (BN x 64) with the 128-byte
//     swizzle (the copy engine writes it so; the MMA descriptors read it so). A K-major operand (stored with K
//     contiguous) is one box of 128-byte rows, one row per M / N index; an MN-major one is boxes of 64 k rows by 64
//     M / N elements, one per 64 of M / N, read with the MMA's transpose flag. Per stage a "full" mbarrier (the
//     copies' bytes) and an "empty" one (one arrival per consumer warp once its MMAs have read the stage);
//   - the consumers keep one MMA group in flight: after committing k tile kt they wait for kt - 1's group and
//     release its stage;
//   - the epilogue writes C straight from the accumulators (mm::store_pair: alpha, beta, f32 or 16-bit C, edges).
// Edges: the copy engine fills rows and k columns past the matrix with zeros, so any M, N, K work; C is written
// only inside (M, N). Requirements (else matmul_wgmma_cuda returns false and matmul.cu's kernel runs): batch 1,
// A and B 16-byte aligned with row strides a multiple of 8 elements, a device of compute capability 9.0 and a build
// with sm_90a code. Chosen by QWENLONG_MATMUL_KERNEL (see matmul_wgmma_cuda).
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/matmul/matmul.h"
#include "cuda/matmul/matmul_common.cuh"
#include "cuda/matmul/matmul_ptx.cuh"
#include "cuda/matmul/matmul_wgmma_ptx.cuh"

namespace qwenlong {

namespace {

using namespace mm;

constexpr int kBK = 64;                 // 64 16-bit elements: one 128-byte swizzled row
constexpr int kConsumers = 2;           // consumer warpgroups, 64 rows each
constexpr int kBM = 64 * kConsumers;    // 128
constexpr int kThreads = 128 * (1 + kConsumers);

template <int BN>
struct Config {
  static constexpr int kStages = BN == 256 ? 4 : 6;
  static constexpr int kABytes = kBM * kBK * 2;  // 16 KiB
  static constexpr int kBBytes = BN * kBK * 2;   // 16 or 32 KiB
  static constexpr int kStageBytes = kABytes + kBBytes;
  // Tiles from a 1024-byte boundary (the swizzle pattern's period), then 2 * kStages mbarriers; 1 KiB of slack to
  // align the dynamic shared memory's start.
  static constexpr int kSmemBytes = 1024 + kStages * kStageBytes + 2 * kStages * 8;
};

// One operand's part of a stage: ROWS rows (M or N) by kBK k, from row0, of an operand with `rows` rows. K-major: one
// box of ROWS 128-byte rows (row0 < rows: the grid has no tile past the matrix). MN-major: ROWS / 64 boxes of kBK k
// rows by 64 elements, 8 KiB apart; a box that lies wholly past the last row is not loaded (what its part of shared
// memory still holds reaches only accumulators of rows or columns past the matrix, which are never stored), so the
// stage's byte count does not depend on how the copy engine counts a box with no element inside the tensor.
// The index math below is host-callable (external linkage, namespace wgmma) so that scripts/gpu/wgmma_emulate.cu runs
// it without a GPU.
}  // namespace

namespace wgmma {

struct Box {
  uint32_t dst;  // bytes from the start of the operand's part of the stage
  int c0, c1;    // tensor-map coordinates, c0 innermost
};
template <int ROWS, bool KMAJOR>
inline constexpr int kBoxes = KMAJOR ? 1 : ROWS / 64;
// Box j (< kBoxes) of an operand's part of stage kt; false where it is not loaded.
template <int ROWS, bool KMAJOR>
__host__ __device__ __forceinline__ bool operand_box(int kt, int row0, int64_t rows, int j, Box* box) {
  if constexpr (KMAJOR) {
    *box = Box{0u, kt * kBK, row0};
    return true;
  } else {
    *box = Box{static_cast<uint32_t>(j) * 8192u, row0 + 64 * j, kt * kBK};
    return row0 + 64 * j < rows;
  }
}
// The bytes the loads of one operand's part complete.
template <int ROWS, bool KMAJOR>
__host__ __device__ __forceinline__ uint32_t operand_bytes(int row0, int64_t rows) {
  uint32_t bytes = 0;
  Box box;
#pragma unroll
  for (int j = 0; j < kBoxes<ROWS, KMAJOR>; ++j) bytes += operand_box<ROWS, KMAJOR>(0, row0, rows, j, &box) ? (KMAJOR ? ROWS * kBK * 2u : 8192u) : 0u;
  return bytes;
}
// The MMA's transpose flag for an operand: 0 K-major, 1 M- / N-major.
__host__ __device__ constexpr int trans_flag(bool kmajor) { return kmajor ? 0 : 1; }
// Consumer warpgroup c's A rows start 8 KiB into the A part in either layout (64 rows of 128 bytes, or the second
// 64-element box).
__host__ __device__ constexpr uint32_t consumer_a_offset(int c) { return static_cast<uint32_t>(c) * 8192u; }
// The descriptor of k16 slice kk of an operand's part whose first row is at `base`.
template <bool KMAJOR>
__host__ __device__ __forceinline__ uint64_t slice_desc(uint32_t base, int kk) {
  if constexpr (KMAJOR) return ptx::kmajor_sw128_desc(base + kk * 32);
  else return ptx::mnmajor_sw128_desc(base + kk * 2048);
}
// Where accumulator i of consumer c's thread (warp, lane) lands in the block tile (row, col), after the f32
// accumulator layout of wgmma m64nNk16 (matmul_wgmma_ptx.cuh); accumulators i and i + 1 (i even) are neighbours in a
// row.
__host__ __device__ __forceinline__ void acc_position(int c, int warp, int lane, int i, int* row, int* col) {
  *row = c * 64 + warp * 16 + lane / 4 + 8 * ((i >> 1) & 1);
  *col = 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
}

}  // namespace wgmma

namespace {

using namespace wgmma;

template <int ROWS, bool KMAJOR>
__device__ __forceinline__ void load_operand(uint32_t dst, const CUtensorMap* map, int kt, int row0, int64_t rows, uint32_t bar) {
#pragma unroll
  for (int j = 0; j < kBoxes<ROWS, KMAJOR>; ++j) {
    Box box;
    if (operand_box<ROWS, KMAJOR>(kt, row0, rows, j, &box)) ptx::tma_load_2d(dst + box.dst, map, box.c0, box.c1, bar);
  }
}

template <int BN, bool BF16, bool A_KMAJOR, bool B_KMAJOR>
__global__ void __launch_bounds__(kThreads, 1)
    matmul_wgmma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b, const Args p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = Config<BN>;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t tiles = (ptx::smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t bars = tiles + C::kStages * C::kStageBytes;
  const auto a_tile = [&](int s) { return tiles + s * C::kStageBytes; };
  const auto b_tile = [&](int s) { return tiles + s * C::kStageBytes + C::kABytes; };
  const auto full = [&](int s) { return bars + 8u * s; };
  const auto empty = [&](int s) { return bars + 8u * (C::kStages + s); };

  int tile_m, tile_n;
  tile_of_block(blockIdx.x, p.tiles_m, p.tiles_n, &tile_m, &tile_n);
  const int ktiles = static_cast<int>((p.k + kBK - 1) / kBK);
  const int wg = threadIdx.x / 128;

  if (threadIdx.x == 0) {
    for (int s = 0; s < C::kStages; ++s) {
      ptx::mbar_init(full(s), 1);
      ptx::mbar_init(empty(s), kConsumers * 4);
    }
    ptx::mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    // Producer: one thread walks the k tiles, each stage once its consumers have released it.
    if (threadIdx.x == 0) {
      ptx::prefetch_tensor_map(&map_a);
      ptx::prefetch_tensor_map(&map_b);
      const uint32_t stage_bytes = operand_bytes<kBM, A_KMAJOR>(tile_m * kBM, p.m) + operand_bytes<BN, B_KMAJOR>(tile_n * BN, p.n);
      for (int kt = 0; kt < ktiles; ++kt) {
        const int s = kt % C::kStages;
        ptx::mbar_wait(empty(s), ((kt / C::kStages) & 1) ^ 1);
        ptx::mbar_arrive_expect_tx(full(s), stage_bytes);
        load_operand<kBM, A_KMAJOR>(a_tile(s), &map_a, kt, tile_m * kBM, p.m, full(s));
        load_operand<BN, B_KMAJOR>(b_tile(s), &map_b, kt, tile_n * BN, p.n, full(s));
      }
    }
    return;
  }

  // Consumers: warpgroup c computes rows 64c .. 64c + 63 of the block tile (its A rows at consumer_a_offset(c)).
  const int c = wg - 1, warp = (threadIdx.x / 32) & 3, lane = threadIdx.x & 31;
  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0.f;
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % C::kStages;
    ptx::mbar_wait(full(s), (kt / C::kStages) & 1);
    ptx::fence_operands(acc);
    ptx::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk)
      ptx::wgmma_async<BN, BF16, trans_flag(A_KMAJOR), trans_flag(B_KMAJOR)>(
          acc, slice_desc<A_KMAJOR>(a_tile(s) + consumer_a_offset(c), kk), slice_desc<B_KMAJOR>(b_tile(s), kk), 1);
    ptx::wgmma_commit();
    ptx::wgmma_wait<1>();  // k tile kt - 1's MMAs are done: its stage goes back to the producer
    ptx::fence_operands(acc);
    if (kt > 0 && lane == 0) ptx::mbar_arrive(empty((kt - 1) % C::kStages));
  }
  ptx::wgmma_wait<0>();
  ptx::fence_operands(acc);

#pragma unroll
  for (int i = 0; i < BN / 2; i += 2) {
    int r, col;
    acc_position(c, warp, lane, i, &r, &col);
    const int64_t row = static_cast<int64_t>(tile_m) * kBM + r;
    if (row < p.m) store_pair(p, p.c, row, static_cast<int64_t>(tile_n) * BN + col, acc[i], acc[i + 1]);
  }
#elif defined(__CUDA_ARCH__)
  __trap();  // only the sm_90a image has a body: never leave C unwritten without an error (hopper() checks before launch)
#endif
}

// cuTensorMapEncodeTiled from the driver, looked up once through the runtime (the runtime is linked statically and
// the driver library is not linked at all); null when the driver does not have it.
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      f = nullptr;
    cudaGetLastError();
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// One operand's tensor map, 16-bit elements with the 128-byte swizzle. K-major, stored (rows, K): boxes of box_rows
// x 64 k. MN-major, stored (K, rows): boxes of 64 k rows x 64 elements. dims and box innermost first.
struct MapSpec {
  cuuint64_t dims[2];
  cuuint64_t stride_bytes;  // between rows of the stored matrix
  cuuint32_t box[2];
};
MapSpec map_spec(int64_t rows, int64_t k, int64_t ld, bool kmajor, int box_rows) {
  MapSpec m{};
  m.dims[0] = static_cast<cuuint64_t>(kmajor ? k : rows);
  m.dims[1] = static_cast<cuuint64_t>(kmajor ? rows : k);
  m.stride_bytes = static_cast<cuuint64_t>(ld) * 2;
  m.box[0] = kBK;
  m.box[1] = static_cast<cuuint32_t>(kmajor ? box_rows : kBK);
  return m;
}
bool make_map(CUtensorMap* map, const void* ptr, int64_t rows, int64_t k, int64_t ld, bool kmajor, bool bf16, int box_rows) {
  const MapSpec m = map_spec(rows, k, ld, kmajor, box_rows);
  const cuuint64_t strides[1] = {m.stride_bytes};
  const cuuint32_t elem_strides[2] = {1, 1};
  return encode_tiled()(map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, const_cast<void*>(ptr), m.dims,
                        strides, m.box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int BN, bool BF16, bool A_KMAJOR, bool B_KMAJOR>
bool launch(const MatmulParams& p, Args args) {
  CUtensorMap map_a, map_b;
  if (!make_map(&map_a, p.a, p.m, p.k, p.lda, A_KMAJOR, BF16, kBM) || !make_map(&map_b, p.b, p.n, p.k, p.ldb, B_KMAJOR, BF16, BN))
    return false;
  auto kernel = matmul_wgmma_kernel<BN, BF16, A_KMAJOR, B_KMAJOR>;
  // Above 48 KiB of dynamic shared memory needs the opt-in; where the device refuses it, the mma.sync kernel runs.
  static const bool opted_in = [&] {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Config<BN>::kSmemBytes) == cudaSuccess) return true;
    cudaGetLastError();
    return false;
  }();
  if (!opted_in) return false;
  const int64_t tiles_m = (p.m + kBM - 1) / kBM, tiles_n = (p.n + BN - 1) / BN;
  if (tiles_m * tiles_n > INT32_MAX) return false;
  args.tiles_m = static_cast<int>(tiles_m);
  args.tiles_n = static_cast<int>(tiles_n);
  args.z0 = 0;
  kernel<<<static_cast<unsigned>(tiles_m * tiles_n), kThreads, Config<BN>::kSmemBytes, compute_stream()>>>(map_a, map_b, args);
  check_launch("matmul");
  return true;
}

// which: bit 2 bf16 (else f16), bit 1 A K-major, bit 0 B K-major.
template <int BN>
bool dispatch(int which, const MatmulParams& p, const Args& args) {
  switch (which) {
    case 0: return launch<BN, false, false, false>(p, args);
    case 1: return launch<BN, false, false, true>(p, args);
    case 2: return launch<BN, false, true, false>(p, args);
    case 3: return launch<BN, false, true, true>(p, args);
    case 4: return launch<BN, true, false, false>(p, args);
    case 5: return launch<BN, true, false, true>(p, args);
    case 6: return launch<BN, true, true, false>(p, args);
    default: return launch<BN, true, true, true>(p, args);
  }
}

// Compute capability 9.0 of the current device, and sm_90a code in this build.
bool hopper() {
  const CudaStatus& st = cuda_status();
  if (st.archs.find("90a") == std::string::npos) return false;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= static_cast<int>(st.devices.size())) {
    cudaGetLastError();
    return false;
  }
  return st.devices[static_cast<size_t>(dev)].major == 9 && st.devices[static_cast<size_t>(dev)].minor == 0;
}

}  // namespace

namespace mm {

bool matmul_wgmma_cuda(const MatmulParams& p, const Args& args) {
  // QWENLONG_MATMUL_KERNEL: "wgmma" (this kernel with BN = 256 where it applies), "wgmma128" (BN = 128); unset or
  // anything else: matmul.cu's mma.sync kernel. Opt-in until the kernel has been checked on a Hopper card.
  const char* choice = std::getenv("QWENLONG_MATMUL_KERNEL");
  if (!choice || std::strncmp(choice, "wgmma", 5) != 0) return false;
  const bool narrow = std::strcmp(choice, "wgmma128") == 0;
  if (p.ab_dtype != DType::bf16 && p.ab_dtype != DType::f16) return false;
  if (p.batch != 1 || p.k == 0) return false;
  if (!aligned16(p.a) || !aligned16(p.b) || p.lda % 8 != 0 || p.ldb % 8 != 0) return false;
  // Products of the kernel's kind that still go to the mma.sync kernel. QWENLONG_MATMUL_WGMMA_STRICT (set by the
  // tests that check this kernel) makes that an error, so that a test cannot pass on the other kernel's results.
  const auto not_here = [](const char* why) {
    if (std::getenv("QWENLONG_MATMUL_WGMMA_STRICT")) throw_runtime(std::string("matmul: the wgmma kernel cannot run here: ") + why);
    return false;
  };
  if (!hopper()) return not_here("the device is not compute capability 9.0, or this build has no sm_90a code");
  if (encode_tiled() == nullptr) return not_here("the driver has no cuTensorMapEncodeTiled");
  const int which = (p.ab_dtype == DType::bf16 ? 4 : 0) | (!p.trans_a ? 2 : 0) | (p.trans_b ? 1 : 0);
  if (!(narrow ? dispatch<128>(which, p, args) : dispatch<256>(which, p, args)))
    return not_here("a tensor map could not be made, the grid is too large, or the shared-memory opt-in was refused");
  return true;
}

}  // namespace mm

}  // namespace qwenlong
