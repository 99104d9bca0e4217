// wgmma_emulate: runs the Hopper matmul kernel's index math (cuda/matmul/matmul_wgmma.cu) on the host, with no GPU.
// It includes the kernel's source and drives its own helpers (tile_of_block, map_spec, operand_box, operand_bytes,
// consumer_a_offset, slice_desc with the descriptors of matmul_wgmma_ptx.cuh, trans_flag, acc_position) through every
// block, k tile, consumer and k16 slice, with models written from the PTX ISA of what the hardware does with them:
//   - the tensor copy (cp.async.bulk.tensor, CU_TENSOR_MAP_SWIZZLE_128B): a box of box[1] rows of box[0] 16-bit
//     elements lands row after row, 128 bytes a row, the 16-byte chunk c of row r stored at chunk c ^ (r % 8);
//     elements outside the tensor arrive as zeros;
//   - wgmma's shared-memory operands (the canonical layouts of "Shared Memory Matrix Layout", 128-byte swizzle, 16-bit
//     elements, T = 8): K-major ((8,m),(T,2k)):((8T,SBO),(1,T)), element (row, k) at start + (row / 8)·SBO +
//     (row % 8)·128 + 2k; MN-major ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)), element (mn, k) at start + (mn / 64)·LBO +
//     (mn % 64)·2 + (k / 8)·SBO + (k % 8)·128; then Swizzle<3,4,3> on the byte address (bits 4-6 ^= bits 7-9);
//     the descriptor's fields decoded as the PTX ISA lays them out (start, LBO, SBO >> 4 in bits 0-13, 16-29, 32-45,
//     swizzle mode in bits 62-63);
//   - the f32 accumulators of m64nNk16: thread 32w + l holds d[i] at row 16w + l / 4 + 8·((i / 2) % 2), column
//     8·(i / 4) + 2·(l % 4) + i % 2.
// It checks: every stage's expected byte count equals the bytes its boxes bring, boxes inside the part and each with
// an element inside the tensor, no byte of a part written twice, tensor-map limits (16-byte strides and base, inner box 128 bytes, boxes of at most 256),
// descriptors inside the stage, every C element inside (M, N) written exactly once and nothing else, and the result
// against a float64 reference: every layout, both tile widths (BN 256 and 128), odd tile edges and k tails. Shared
// memory starts each stage as NaN, so a read of a byte no copy wrote reaches C as NaN unless it only feeds rows or
// columns that are never stored. What it cannot see: mbarrier phases and waits, the asynchronous proxy's ordering,
// the instructions' real semantics, timing.
//
// Build from the repository root, with a directory GEN holding qwenlong_cuda_archs.h:
//   nvcc -std=c++17 -O2 -arch=sm_90a -I. -IGEN -DQWENLONG_HAVE_CUDA=1 scripts/gpu/wgmma_emulate.cu \
//     cuda/common/device.cc -o wgmma_emulate && ./wgmma_emulate
#include "cuda/matmul/matmul_wgmma.cu"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace qwenlong;
using namespace qwenlong::wgmma;

static int fails = 0;
#define REQUIRE(c, ...)                        \
  do {                                         \
    if (!(c)) {                                \
      if (fails++ < 20) {                      \
        printf("REQUIRE failed %s: ", #c);     \
        printf(__VA_ARGS__);                   \
        printf("\n");                          \
      }                                        \
    }                                          \
  } while (0)

// Shared memory of one stage: 16-bit cells, each with a count of the copies that wrote it.
struct Stage {
  std::vector<uint16_t> cell;
  std::vector<int> writes;
  explicit Stage(int bytes) : cell(bytes / 2, 0x7fc0), writes(bytes / 2, 0) {}  // 0x7fc0: a bf16 NaN
};

static uint32_t swizzle128(uint32_t addr) { return addr ^ (((addr >> 7) & 7u) << 4); }

// The tensor copy of one box into the stage at byte `dst` (1024-aligned: the swizzle's period).
static void tma_box(const MapSpec& m, const uint16_t* tensor, size_t tensor_elems, int c0, int c1, uint32_t dst, uint32_t part_end,
                    Stage& st) {
  REQUIRE(dst % 1024 == 0, "box destination %u not on 1024 bytes", dst);
  REQUIRE(m.box[0] * 2 == 128, "inner box %u bytes, the 128-byte swizzle needs 128", unsigned(m.box[0] * 2));
  REQUIRE(m.box[1] >= 1 && m.box[1] <= 256, "box rows %u", unsigned(m.box[1]));
  REQUIRE(m.stride_bytes % 16 == 0, "row stride %llu bytes", (unsigned long long)m.stride_bytes);
  REQUIRE(dst + m.box[0] * m.box[1] * 2 <= part_end, "box [%u, +%u) past its part (%u)", dst, unsigned(m.box[0] * m.box[1] * 2), part_end);
  // The kernel loads no box without an element inside the tensor (how the copy engine counts such a box's bytes
  // is not something the stage's byte count may depend on).
  REQUIRE(c0 >= 0 && c1 >= 0 && uint64_t(c0) < m.dims[0] && uint64_t(c1) < m.dims[1], "box at (%d, %d) has no element inside the tensor", c0, c1);
  for (uint32_t i1 = 0; i1 < m.box[1]; ++i1) {
    for (uint32_t i0 = 0; i0 < m.box[0]; ++i0) {
      const int64_t x0 = int64_t(c0) + i0, x1 = int64_t(c1) + i1;
      uint16_t v = 0;
      if (x0 >= 0 && x1 >= 0 && uint64_t(x0) < m.dims[0] && uint64_t(x1) < m.dims[1]) {
        const size_t e = size_t(x1) * (m.stride_bytes / 2) + size_t(x0);
        REQUIRE(e < tensor_elems, "tensor read past the buffer (%zu of %zu)", e, tensor_elems);
        if (e < tensor_elems) v = tensor[e];
      }
      const uint32_t addr = swizzle128(dst + i1 * 128 + i0 * 2);
      st.cell[addr / 2] = v;
      st.writes[addr / 2]++;
    }
  }
}

struct Desc {
  uint32_t start, lbo, sbo;
  int mode;
};
static Desc decode(uint64_t d) {
  return Desc{uint32_t(d & 0x3fff) << 4, uint32_t((d >> 16) & 0x3fff) << 4, uint32_t((d >> 32) & 0x3fff) << 4, int(d >> 62)};
}
// Element (row, k) of a 16-row-or-column-deep operand slice (row: M or N index, k < 16).
static uint32_t operand_addr(const Desc& d, int trans, int row, int k) {
  const uint32_t logical = trans == 0 ? d.start + (row / 8) * d.sbo + (row % 8) * 128 + 2 * k
                                      : d.start + (row / 64) * d.lbo + (row % 64) * 2 + (k / 8) * d.sbo + (k % 8) * 128;
  return swizzle128(logical);
}

static float bf(uint16_t h) { return bf16_to_f32(h); }

template <int BN, bool AK, bool BK>
static void emulate(const Args& p, const std::vector<uint16_t>& A, const std::vector<uint16_t>& B, int64_t lda, int64_t ldb,
                    std::vector<float>& C) {
  using Cfg = Config<BN>;
  const MapSpec ma = map_spec(p.m, p.k, lda, AK, kBM), mb = map_spec(p.n, p.k, ldb, BK, BN);
  const int tiles_m = int((p.m + kBM - 1) / kBM), tiles_n = int((p.n + BN - 1) / BN);
  const int ktiles = int((p.k + kBK - 1) / kBK);
  // Shared-memory addresses as the kernel has them: stage 0 on a 1024-byte boundary, then A, then B.
  const uint32_t a_part = 0, b_part = Cfg::kABytes, stage_end = Cfg::kStageBytes;
  std::vector<int> seen(size_t(tiles_m) * tiles_n, 0);
  std::vector<double> D(size_t(kConsumers) * 64 * BN);
  for (int block = 0; block < tiles_m * tiles_n; ++block) {
    int tm, tn;
    tile_of_block(block, tiles_m, tiles_n, &tm, &tn);
    REQUIRE(tm >= 0 && tm < tiles_m && tn >= 0 && tn < tiles_n, "tile %d %d", tm, tn);
    if (tm < 0 || tm >= tiles_m || tn < 0 || tn >= tiles_n) continue;
    seen[size_t(tm) * tiles_n + tn]++;
    std::fill(D.begin(), D.end(), 0.0);
    const uint32_t expected = operand_bytes<kBM, AK>(tm * kBM, p.m) + operand_bytes<BN, BK>(tn * BN, p.n);
    for (int kt = 0; kt < ktiles; ++kt) {
      Stage st(Cfg::kStageBytes);
      uint32_t brought = 0;
      for (int j = 0; j < kBoxes<kBM, AK>; ++j) {
        Box box;
        if (!operand_box<kBM, AK>(kt, tm * kBM, p.m, j, &box)) continue;
        tma_box(ma, A.data(), A.size(), box.c0, box.c1, a_part + box.dst, b_part, st);
        brought += ma.box[0] * ma.box[1] * 2;
      }
      for (int j = 0; j < kBoxes<BN, BK>; ++j) {
        Box box;
        if (!operand_box<BN, BK>(kt, tn * BN, p.n, j, &box)) continue;
        tma_box(mb, B.data(), B.size(), box.c0, box.c1, b_part + box.dst, stage_end, st);
        brought += mb.box[0] * mb.box[1] * 2;
      }
      REQUIRE(brought == expected, "stage expects %u bytes, its boxes bring %u (tile %d,%d)", expected, brought, tm, tn);
      for (size_t e = 0; e < st.writes.size(); ++e) REQUIRE(st.writes[e] <= 1, "shared byte %zu written %d times", 2 * e, st.writes[e]);
      for (int c = 0; c < kConsumers; ++c) {
        for (int kk = 0; kk < kBK / 16; ++kk) {
          const Desc da = decode(slice_desc<AK>(a_part + consumer_a_offset(c), kk)), db = decode(slice_desc<BK>(b_part, kk));
          REQUIRE(da.mode == 1 && db.mode == 1, "swizzle mode %d %d", da.mode, db.mode);
          float a[64][16], b[BN][16];
          for (int r = 0; r < 64; ++r)
            for (int k = 0; k < 16; ++k) {
              const uint32_t addr = operand_addr(da, trans_flag(AK), r, k);
              REQUIRE(addr + 2 <= b_part, "A read at %u outside its part", addr);  // the A part starts at 0
              a[r][k] = addr + 2 <= uint32_t(stage_end) ? bf(st.cell[addr / 2]) : NAN;
            }
          for (int r = 0; r < BN; ++r)
            for (int k = 0; k < 16; ++k) {
              const uint32_t addr = operand_addr(db, trans_flag(BK), r, k);
              REQUIRE(addr >= b_part && addr + 2 <= stage_end, "B read at %u outside its part", addr);
              b[r][k] = addr + 2 <= uint32_t(stage_end) ? bf(st.cell[addr / 2]) : NAN;
            }
          for (int r = 0; r < 64; ++r)
            for (int n = 0; n < BN; ++n) {
              double s = 0;
              for (int k = 0; k < 16; ++k) s += double(a[r][k]) * b[n][k];
              D[(size_t(c) * 64 + r) * BN + n] += s;
            }
        }
      }
    }
    // The epilogue: each thread's accumulators, placed by the PTX fragment model, stored where acc_position says.
    for (int c = 0; c < kConsumers; ++c) {
      for (int t = 0; t < 128; ++t) {
        const int warp = t / 32, lane = t % 32;
        for (int i = 0; i < BN / 2; i += 2) {
          int r, col;
          acc_position(c, warp, lane, i, &r, &col);
          const int64_t row = int64_t(tm) * kBM + r;
          if (row >= p.m) continue;
          for (int e = 0; e < 2; ++e) {
            const int fr = warp * 16 + lane / 4 + 8 * (((i + e) / 2) % 2), fc = 8 * ((i + e) / 4) + 2 * (lane % 4) + (i + e) % 2;
            const int64_t gc = int64_t(tn) * BN + col + e;
            if (gc >= p.n) continue;
            float& dst = C[size_t(row) * p.ldc + gc];
            REQUIRE(std::isnan(dst), "C(%ld, %ld) written twice", long(row), long(gc));
            dst = float(D[(size_t(c) * 64 + fr) * BN + fc]);
          }
        }
      }
    }
  }
  for (size_t i = 0; i < seen.size(); ++i) REQUIRE(seen[i] == 1, "tile %zu seen %d times", i, seen[i]);
}

int main() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1, 1);
  // M, N, K multiples of 8 (the kernel's requirement); edges inside the 128 x BN x 64 tiles, k tails, one tile.
  struct Shape {
    int64_t m, n, k;
  } shapes[] = {{8, 8, 8}, {72, 200, 136}, {136, 520, 64}, {264, 136, 72}, {256, 512, 192}, {136, 264, 200}, {192, 320, 64}};
  int ncase = 0;
  for (const Shape& s : shapes)
    for (int bn : {256, 128})
      for (int layout = 0; layout < 4; ++layout) {
        const bool ta = layout & 2, tb = layout & 1;
        const bool ak = !ta, bk = tb;
        const int64_t ar = ta ? s.k : s.m, ac = ta ? s.m : s.k, br = tb ? s.n : s.k, bc = tb ? s.k : s.n;
        const int64_t lda = ac + 8, ldb = bc + 16;  // row strides past the rows: padding never read
        std::vector<uint16_t> A(size_t(ar * lda)), B(size_t(br * ldb));
        for (auto& x : A) x = f32_to_bf16(uni(rng));
        for (auto& x : B) x = f32_to_bf16(uni(rng));
        A.resize(size_t((ar - 1) * lda + ac));  // trimmed to the last element used: a read past it is caught
        B.resize(size_t((br - 1) * ldb + bc));
        Args p{};
        p.m = s.m;
        p.n = s.n;
        p.k = s.k;
        p.ldc = s.n + 1;
        std::vector<float> C(size_t(s.m * p.ldc), NAN);
        const int which = (bn == 256 ? 4 : 0) | (ak ? 2 : 0) | (bk ? 1 : 0);
        switch (which) {
          case 0: emulate<128, false, false>(p, A, B, lda, ldb, C); break;
          case 1: emulate<128, false, true>(p, A, B, lda, ldb, C); break;
          case 2: emulate<128, true, false>(p, A, B, lda, ldb, C); break;
          case 3: emulate<128, true, true>(p, A, B, lda, ldb, C); break;
          case 4: emulate<256, false, false>(p, A, B, lda, ldb, C); break;
          case 5: emulate<256, false, true>(p, A, B, lda, ldb, C); break;
          case 6: emulate<256, true, false>(p, A, B, lda, ldb, C); break;
          default: emulate<256, true, true>(p, A, B, lda, ldb, C); break;
        }
        double maxerr = 0;
        for (int64_t i = 0; i < s.m; ++i) {
          for (int64_t j = 0; j < s.n; ++j) {
            double ref = 0;
            for (int64_t k = 0; k < s.k; ++k)
              ref += double(bf(A[size_t(ta ? k * lda + i : i * lda + k)])) * bf(B[size_t(tb ? j * ldb + k : k * ldb + j)]);
            const double out = C[size_t(i * p.ldc + j)];
            if (!std::isfinite(out)) {
              REQUIRE(false, "C(%ld, %ld) unwritten or NaN", long(i), long(j));
              maxerr = 1e9;
              continue;
            }
            maxerr = std::max(maxerr, std::fabs(out - ref));
          }
          REQUIRE(std::isnan(C[size_t(i * p.ldc + s.n)]), "C's padding written in row %ld", long(i));
        }
        const bool ok = maxerr < 1e-3;
        printf("%3d BN %d %s%s m=%ld n=%ld k=%ld maxerr=%.2e %s\n", ncase++, bn, ta ? "T" : "N", tb ? "T" : "N", long(s.m), long(s.n),
               long(s.k), maxerr, ok ? "ok" : "BAD");
        if (!ok) fails++;
      }
  printf("fails=%d\n", fails);
  return fails != 0;
}
