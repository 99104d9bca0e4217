// matmul_emulate: runs the tensor-core matmul kernel's index math on the host, with no GPU. It includes matmul.cu
// and drives the kernel's own helpers (tile_of_block, TileCopy, FragmentOffsets, acc_row/acc_col) for every thread
// of every block, with lane-by-lane models of cp.async zero-fill, ldmatrix (.trans) and mma.sync m16n8k16 written
// from the PTX ISA's fragment layouts. It checks: no global read outside the operands (buffers are trimmed to the
// last element used), 16-byte chunk alignment on the cp.async path, every shared tile element written exactly once
// per k tile, no ldmatrix bank conflicts, every C element inside (M, N) written exactly once and nothing outside, and
// the result against a float64 reference, over odd shapes, all four layouts, both copy paths and a broadcast batch.
// What it cannot see: the pipeline's barriers and waits, the real instructions' semantics, timing.
//
// Build from the repository root, with a directory GEN holding qwenlong_cuda_archs.h:
//   nvcc -std=c++17 -O2 -arch=sm_80 -I. -IGEN -DQWENLONG_HAVE_CUDA=1 scripts/gpu/matmul_emulate.cu cuda/matmul/matmul_wgmma.cu \
//     cuda/common/device.cc -o matmul_emulate && ./matmul_emulate
#include "cuda/matmul/matmul.cu"
#include <cstdio>
#include <random>
#include <vector>
#include <cmath>
#include <cstring>
using namespace qwenlong;

static float bf(uint16_t h) { return bf16_to_f32(h); }
static int fails = 0;
#define REQUIRE(c, ...) do { if (!(c)) { if (fails++ < 20) { printf("REQUIRE failed %s: ", #c); printf(__VA_ARGS__); printf("\n"); } } } while (0)

// ldmatrix x4 model: addr[32] byte offsets into tile; returns regs[32][4]
static void ldsm(const std::vector<uint16_t>& tile, const uint32_t addr[32], bool trans, uint32_t out[32][4]) {
  for (int l = 0; l < 32; ++l) REQUIRE(addr[l] % 16 == 0 && addr[l] + 16 <= tile.size() * 2, "ldsm addr %u", addr[l]);
  for (int j = 0; j < 4; ++j) {
    int used = 0;
    for (int r = 0; r < 8; ++r) used |= 1 << ((addr[8 * j + r] / 16) % 8);
    REQUIRE(used == 0xff, "ldmatrix bank conflict, matrix %d", j);
    auto el = [&](int row, int col) { return tile[addr[8 * j + row] / 2 + col]; };
    for (int l = 0; l < 32; ++l) {
      int g = l / 4, t = l % 4;
      uint16_t lo, hi;
      if (!trans) { lo = el(g, 2 * t); hi = el(g, 2 * t + 1); }
      else { lo = el(2 * t, g); hi = el(2 * t + 1, g); }
      out[l][j] = lo | (uint32_t(hi) << 16);
    }
  }
}
static float lo16(uint32_t r) { return bf(r & 0xffff); }
static float hi16(uint32_t r) { return bf(r >> 16); }
// mma m16n8k16 model (double accumulate per step then to float)
static void mma(float acc[32][4], const uint32_t a[32][4], const uint32_t b[32][2]) {
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    int g = l / 4, t = l % 4;
    A[g][2*t] = lo16(a[l][0]); A[g][2*t+1] = hi16(a[l][0]);
    A[g+8][2*t] = lo16(a[l][1]); A[g+8][2*t+1] = hi16(a[l][1]);
    A[g][2*t+8] = lo16(a[l][2]); A[g][2*t+9] = hi16(a[l][2]);
    A[g+8][2*t+8] = lo16(a[l][3]); A[g+8][2*t+9] = hi16(a[l][3]);
    B[2*t][g] = lo16(b[l][0]); B[2*t+1][g] = hi16(b[l][0]);
    B[2*t+8][g] = lo16(b[l][1]); B[2*t+9][g] = hi16(b[l][1]);
  }
  for (int l = 0; l < 32; ++l) {
    int g = l / 4, t = l % 4;
    int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2*t, 2*t+1, 2*t, 2*t+1};
    for (int e = 0; e < 4; ++e) {
      double s = 0; for (int k = 0; k < 16; ++k) s += double(A[rows[e]][k]) * B[k][cols[e]];
      acc[l][e] += float(s);
    }
  }
}

template <bool AK, bool BK, bool ALIGNED>
void emulate(const Args& p, int64_t batch, const std::vector<uint16_t>& A, const std::vector<uint16_t>& B, std::vector<float>& C) {
  const int tiles_m = (p.m + kBM - 1) / kBM, tiles_n = (p.n + kBN - 1) / kBN;
  const int nkt = (p.k + kBK - 1) / kBK;
  std::vector<int> seen(tiles_m * tiles_n, 0);
  for (int64_t z = 0; z < batch; ++z)
  for (int block = 0; block < tiles_m * tiles_n; ++block) {
    int tm, tn; tile_of_block(block, tiles_m, tiles_n, &tm, &tn);
    REQUIRE(tm >= 0 && tm < tiles_m && tn >= 0 && tn < tiles_n, "tile");
    if (z == 0) seen[tm * tiles_n + tn]++;
    const int64_t m0 = int64_t(tm) * kBM, n0 = int64_t(tn) * kBN;
    const uint16_t* a = static_cast<const uint16_t*>(p.a) + z * p.stride_a;
    const uint16_t* b = static_cast<const uint16_t*>(p.b) + z * p.stride_b;
    const uint16_t* a_lo = A.data(); const uint16_t* a_hi = A.data() + A.size();
    const uint16_t* b_lo = B.data(); const uint16_t* b_hi = B.data() + B.size();
    std::vector<TileCopy<AK ? kBM : kBK, AK ? kBK : kBM, ALIGNED>> ca(kThreads);
    std::vector<TileCopy<BK ? kBN : kBK, BK ? kBK : kBN, ALIGNED>> cb(kThreads);
    for (int tid = 0; tid < kThreads; ++tid) {
      if (AK) ca[tid].init(a, p.lda, m0, p.m, 0, p.k, tid); else ca[tid].init(a, p.lda, 0, p.k, m0, p.m, tid);
      if (BK) cb[tid].init(b, p.ldb, n0, p.n, 0, p.k, tid); else cb[tid].init(b, p.ldb, 0, p.k, n0, p.n, tid);
    }
    static float acc[8][4][4][32][4];
    memset(acc, 0, sizeof(acc));
    for (int kt = 0; kt < nkt; ++kt) {
      std::vector<uint16_t> ta(kTileElems, 0xffff), tb(kTileElems, 0xffff);  // NaN garbage
      std::vector<int> wa(kTileElems, 0), wb(kTileElems, 0);
      auto fill = [&](auto& cps, std::vector<uint16_t>& tile, std::vector<int>& w, const uint16_t* lo, const uint16_t* hi) {
        for (int tid = 0; tid < kThreads; ++tid) {
          auto& c = cps[tid];
          for (int i = 0; i < std::decay_t<decltype(c)>::kCount; ++i) {
            int n = c.valid(i); uint32_t off = c.offset(i);
            REQUIRE(off % 16 == 0 && off + 16 <= kTileElems * 2, "dst off %u", off);
            const uint16_t* src = c.src(i);
            if (n > 0) {
              REQUIRE(src >= lo && src + n <= hi, "src out of bounds kt=%d tid=%d i=%d n=%d", kt, tid, i, n);
              if (ALIGNED) REQUIRE(((src - lo) % 8) == 0, "src misaligned (elements %ld)", long(src - lo));
            }
            for (int e = 0; e < 8; ++e) { tile[off / 2 + e] = e < n ? src[e] : 0; w[off / 2 + e]++; }
          }
        }
        for (int e = 0; e < kTileElems; ++e) REQUIRE(w[e] == 1, "tile elem %d written %d times", e, w[e]);
      };
      fill(ca, ta, wa, a_lo, a_hi);
      fill(cb, tb, wb, b_lo, b_hi);
      for (int tid = 0; tid < kThreads; ++tid) { ca[tid].cur.advance(AK, kBK, p.lda); cb[tid].cur.advance(BK, kBK, p.ldb); }
      for (int warp = 0; warp < 8; ++warp) {
        int wm = warp >> 2, wn = warp & 3;
        FragmentOffsets<AK, BK> off[32];
        for (int l = 0; l < 32; ++l) off[l].init(l, wm, wn);
        for (int kk = 0; kk < 2; ++kk) {
          uint32_t af[4][32][4], bfr[4][32][2];
          for (int mi = 0; mi < 4; ++mi) { uint32_t ad[32]; for (int l = 0; l < 32; ++l) ad[l] = off[l].a_kk[kk] + off[l].a_mi[mi]; ldsm(ta, ad, !AK, af[mi]); }
          for (int nj = 0; nj < 2; ++nj) {
            uint32_t ad[32], r[32][4]; for (int l = 0; l < 32; ++l) ad[l] = off[l].b_kk[kk] + off[l].b_nj[nj];
            ldsm(tb, ad, !BK, r);
            for (int l = 0; l < 32; ++l) { bfr[2*nj][l][0] = r[l][0]; bfr[2*nj][l][1] = r[l][1]; bfr[2*nj+1][l][0] = r[l][2]; bfr[2*nj+1][l][1] = r[l][3]; }
          }
          for (int mi = 0; mi < 4; ++mi) for (int ni = 0; ni < 4; ++ni) {
            float accl[32][4]; for (int l = 0; l < 32; ++l) for (int e = 0; e < 4; ++e) accl[l][e] = acc[warp][mi][ni][l][e];
            mma(accl, af[mi], bfr[ni]);
            for (int l = 0; l < 32; ++l) for (int e = 0; e < 4; ++e) acc[warp][mi][ni][l][e] = accl[l][e];
          }
        }
      }
    }
    for (int warp = 0; warp < 8; ++warp) for (int l = 0; l < 32; ++l) {
      int wm = warp >> 2, wn = warp & 3;
      for (int mi = 0; mi < 4; ++mi) for (int h = 0; h < 2; ++h) {
        int64_t row = m0 + acc_row(wm, l, mi, h); if (row >= p.m) continue;
        for (int ni = 0; ni < 4; ++ni) {
          int64_t col = n0 + acc_col(wn, l, ni);
          for (int e = 0; e < 2; ++e) if (col + e < p.n) {
            float& dst = C[z * p.stride_c + row * p.ldc + col + e];
            REQUIRE(std::isnan(dst), "C written twice at %ld,%ld", long(row), long(col + e));
            dst = acc[warp][mi][ni][l][2 * h + e];
          }
        }
      }
    }
  }
  for (int i = 0; i < tiles_m * tiles_n; ++i) REQUIRE(seen[i] == 1, "tile %d seen %d", i, seen[i]);
}

int main() {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uni(-1, 1);
  struct S { int64_t m, n, k; } shapes[] = {{1,1,1},{7,13,5},{63,65,129},{129,130,33},{200,129,64},{1,300,7},{257,3,95},{128,128,32},{130,260,100},{129,1000,1}};
  int ncase = 0;
  for (auto s : shapes) for (int layout = 0; layout < 4; ++layout) for (int ldm = 0; ldm < 2; ++ldm) {
    bool ta = layout & 2, tb = layout & 1;
    int64_t ar = ta ? s.k : s.m, ac = ta ? s.m : s.k, br = tb ? s.n : s.k, bc = tb ? s.k : s.n;
    int64_t lda = ldm ? (ac + 7) / 8 * 8 + 8 : ac + 1, ldb = ldm ? (bc + 7) / 8 * 8 : bc + 3;
    int64_t batch = 2;
    int64_t sa = (ar * lda + 7) / 8 * 8, sb = 0;  // B broadcast
    std::vector<uint16_t> A(sa * batch), B(br * ldb);
    for (auto& x : A) x = f32_to_bf16(uni(rng));
    for (auto& x : B) x = f32_to_bf16(uni(rng));
    // trim the buffers to exactly the last element used, so over-reads are caught
    A.resize((batch - 1) * sa + (ar - 1) * lda + ac);
    B.resize((br - 1) * ldb + bc);
    Args p{};
    p.a = A.data(); p.b = B.data(); p.m = s.m; p.n = s.n; p.k = s.k; p.lda = lda; p.ldb = ldb; p.ldc = s.n + 1;
    p.stride_a = sa; p.stride_b = sb; p.stride_c = s.m * p.ldc;
    std::vector<float> C(batch * p.stride_c, NAN);
    bool aligned = ldm == 1;  // element-offset alignment in the model
    int which = (!ta ? 4 : 0) | (tb ? 2 : 0) | (aligned ? 1 : 0);
    switch (which) {
      case 0: emulate<false,false,false>(p, batch, A, B, C); break;
      case 1: emulate<false,false,true>(p, batch, A, B, C); break;
      case 2: emulate<false,true,false>(p, batch, A, B, C); break;
      case 3: emulate<false,true,true>(p, batch, A, B, C); break;
      case 4: emulate<true,false,false>(p, batch, A, B, C); break;
      case 5: emulate<true,false,true>(p, batch, A, B, C); break;
      case 6: emulate<true,true,false>(p, batch, A, B, C); break;
      default: emulate<true,true,true>(p, batch, A, B, C); break;
    }
    double maxerr = 0;
    for (int64_t z = 0; z < batch; ++z) for (int64_t i = 0; i < s.m; ++i) for (int64_t j = 0; j < s.n; ++j) {
      double ref = 0;
      for (int64_t k = 0; k < s.k; ++k) ref += double(bf(A[z * sa + (ta ? k * lda + i : i * lda + k)])) * bf(B[tb ? j * ldb + k : k * ldb + j]);
      double out = C[z * p.stride_c + i * p.ldc + j];
      if (!std::isfinite(out)) { REQUIRE(false, "unwritten/NaN at %ld,%ld", long(i), long(j)); maxerr = 1e9; continue; }
      maxerr = std::max(maxerr, std::fabs(out - ref));
    }
    for (int64_t z = 0; z < batch; ++z) for (int64_t i = 0; i < s.m; ++i) REQUIRE(std::isnan(C[z * p.stride_c + i * p.ldc + s.n]), "pad written");
    printf("%3d %s%s m=%ld n=%ld k=%ld lda=%ld ldb=%ld %s maxerr=%.2e %s\n", ncase++, ta ? "T" : "N", tb ? "T" : "N", long(s.m), long(s.n), long(s.k), long(lda), long(ldb), aligned ? "async" : "plain", maxerr, maxerr < 1e-4 ? "ok" : "BAD");
    if (maxerr >= 1e-4) fails++;
  }
  printf("fails=%d\n", fails);
  return fails != 0;
}
