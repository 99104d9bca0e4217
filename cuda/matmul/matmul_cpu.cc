// The CPU twin of matmul: the spec. The loop nest, the packing contract and the thread split are described in
// matmul_cpu.h; this file holds the driver every ISA shares, and the scalar packer and microkernel (plain C++,
// the readable version of what matmul_avx2.cc / matmul_avx512.cc do with vector registers).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>

#include "cuda/common/cpu_features.h"
#include "cuda/common/thread_pool.h"
#include "cuda/matmul/matmul_cpu.h"

namespace qwenlong {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// A cache-line-aligned float buffer that grows on demand and is kept for the next call (one per thread and role,
// so a task never shares its scratch with another).
class ScratchBuffer {
 public:
  ~ScratchBuffer() { std::free(data_); }
  float* get(int64_t floats) {
    floats += 16;  // vector packers may store a few lanes past the last panel
    if (floats > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      size_t bytes = static_cast<size_t>(round_up(floats * 4, 64));
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      capacity_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

thread_local ScratchBuffer a_panels;  // the task's packed A block (mc × kc)
thread_local ScratchBuffer b_panels;  // the caller's packed B block (kc × nc), read by every task
thread_local ScratchBuffer c_rows;    // f32 rows of C when C is f16/bf16 (products of several k blocks)
thread_local ScratchBuffer c_tile;    // a task's f32 C tile when C is f16/bf16 and k is one block
thread_local ScratchBuffer b_group;   // a task's group of packed B panels (gemm_rows_once)

// ---- The scalar kernel ----

template <typename Load>
void pack_panels_with(Load load, const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r,
                      float* out) {
  for (int64_t panel_x = 0; panel_x < nx; panel_x += r, out += r * kc) {
    const int64_t valid = std::min<int64_t>(r, nx - panel_x);
    for (int64_t k = 0; k < kc; ++k) {
      for (int i = 0; i < r; ++i) {
        out[k * r + i] = i < valid ? load((x0 + panel_x + i) * src.sx + (k0 + k) * src.sk) : 0.f;
      }
    }
  }
}

constexpr int kScalarMr = 4, kScalarNr = 8;

// a: (kc, mr) packed, b: (kc, nr) packed, c: (m, n) with row stride ldc.
void micro_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t m, int64_t n,
                  float alpha, float beta) {
  float acc[kScalarMr][kScalarNr] = {};
  for (int64_t p = 0; p < kc; ++p, a += kScalarMr, b += kScalarNr) {
    for (int i = 0; i < kScalarMr; ++i) {
      for (int j = 0; j < kScalarNr; ++j) acc[i][j] += a[i] * b[j];
    }
  }
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float* cij = c + i * ldc + j;
      *cij = beta == 0.f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *cij;
    }
  }
}

// ---- The driver ----

// One batch entry with C in f32: C(m × n, row stride ldc) = alpha · op(A) · op(B) + beta · C.
struct GemmProblem {
  PanelSource a;  // x = row of op(A)
  PanelSource b;  // x = column of op(B)
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.f, beta = 0.f;
  // An f16/bf16 C instead of c (same ldc), for k in one block: each task's f32 tile is rounded into it as soon as it
  // is final (finish: alpha · sum, + beta · C, round), so no band of C waits in a scratch buffer and B is packed once.
  uint16_t* half_c = nullptr;
  DType half_dtype = DType::bf16;
};

// Below this many multiply-adds a problem runs on the calling thread: waking the pool costs more.
constexpr double kParallelMinMacs = double(1 << 20);

// One task's tiles over packed panels: its m rows (packed A, mr-row panels) times the panels at b (cols columns from
// the first, panel q at b + q · nr · slots), into c (row stride ldc), C = alpha · sum + beta · C. Fewer rows than the
// register tile go through micro_few (more accumulator chains per call); an element's arithmetic is the same either way.
void sweep_tiles(const GemmKernel& kern, int64_t slots, const float* a_pack, const float* b, float* c, int64_t ldc,
                 int64_t m, int64_t cols, float alpha, float beta) {
  const int mr = kern.mr, nr = kern.nr;
  if (kern.micro_few && m < mr) {
    kern.micro_few(slots, a_pack, b, nr * slots, c, ldc, m, cols, alpha, beta);
    return;
  }
  for (int64_t j = 0; j < cols; j += nr) {
    for (int64_t ir = 0; ir < m; ir += mr) {
      kern.micro(slots, a_pack + ir * slots, b + j * slots, c + ir * ldc + j, ldc, std::min<int64_t>(mr, m - ir),
                 std::min<int64_t>(nr, cols - j), alpha, beta);
    }
  }
}

// An f16/bf16 C's rows from a task's f32 tile (GemmProblem::half_c): rows × cols from t (row stride ldt) into
// half_c + col0 (row stride g.ldc), each rounded once.
void finish_half_tile(const GemmKernel& kern, const GemmProblem& g, const float* t, int64_t ldt, int64_t row0,
                      int64_t rows, int64_t col0, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i)
    kern.finish_half(t + i * ldt, g.half_c + (row0 + i) * g.ldc + col0, cols, g.half_dtype, g.beta);
}

// What a task of gemm_rows_once keeps in L2: its packed A block and a group of packed B panels (L2 is 1-2 MiB).
constexpr int64_t kRowsOnceL2Bytes = 512 << 10;

// gemm_blocked's path when all of M is one block (M ≤ mc: decode steps, M = 1-16, and short prefills against a weight
// matrix). Each packed element of B then serves one task's rows and is never needed again, so packing a whole
// kc × nc block to memory first and reading it back would move B's bytes through DRAM three times for one use. Here
// each task takes its share of the panels for every k block and packs them a group at a time into a buffer that stays
// in L2, running its rows over each group as soon as it is packed: B is read from memory once. The packer, the
// kernels, kc, the order of the k blocks and the thread split are gemm_blocked's, and an element's sum does not
// depend on which panels or rows share a kernel call, so the bits are the same.
void gemm_rows_once(const GemmKernel& kern, const GemmProblem& g, int threads, int64_t kc) {
  const int mr = kern.mr, nr = kern.nr, kps = kern.k_per_slot;
  const int64_t panels = ceil_div(g.n, nr);
  const int64_t kc_slots = kc / kps;
  const int64_t a_bytes = round_up(g.m, mr) * kc_slots * 4, panel_bytes = int64_t(nr) * kc_slots * 4;
  const int64_t group = std::max<int64_t>(1, (kRowsOnceL2Bytes - a_bytes) / panel_bytes);
  const int64_t tasks = std::min<int64_t>(threads, panels);
  auto run = [&](int64_t t) {
    int64_t p_lo, p_hi;
    split_range(panels, tasks, t, &p_lo, &p_hi);
    if (p_hi <= p_lo) return;
    const int64_t col0 = p_lo * nr, cols = std::min(g.n - col0, (p_hi - p_lo) * nr);
    // Where the tiles go: C itself, or (half C) an f32 tile of this task's columns, rounded at the end.
    const int64_t ld_out = g.half_c ? cols : g.ldc;
    float* c_out = g.half_c ? c_tile.get(g.m * ld_out) : g.c + col0;
    float* a_pack = a_panels.get(round_up(g.m, mr) * kc_slots);
    float* b_pack = b_group.get(group * nr * kc_slots);
    for (int64_t pc = 0; pc < g.k; pc += kc) {
      const int64_t kc_cur = std::min(kc, g.k - pc);
      const int64_t slots = ceil_div(kc_cur, kps);
      const float beta = g.half_c ? 0.f : pc == 0 ? g.beta : 1.f;  // later k blocks add to what the first one wrote
      kern.pack(g.a, 0, g.m, pc, kc_cur, mr, a_pack);
      for (int64_t q = 0; q < cols; q += group * nr) {
        const int64_t n_cur = std::min(group * nr, cols - q);
        kern.pack(g.b, col0 + q, n_cur, pc, kc_cur, nr, b_pack);
        sweep_tiles(kern, slots, a_pack, b_pack, c_out + q, ld_out, g.m, n_cur, g.alpha, beta);
      }
    }
    if (g.half_c) finish_half_tile(kern, g, c_out, ld_out, 0, g.m, col0, cols);
  };
  if (tasks > 1) ThreadPool::instance().parallel_for(tasks, run);
  else run(0);
}

// Runs one problem on `threads` threads (1: inline). The split depends only on the sizes and `threads`, and no
// split changes any element's summation order (see matmul_cpu.h).
void gemm_blocked(const GemmKernel& kern, const GemmProblem& g, int threads) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {  // the product is empty: C = beta · C
    for (int64_t i = 0; i < g.m; ++i) {
      float* row = g.c + i * g.ldc;
      for (int64_t j = 0; j < g.n; ++j) row[j] = g.beta == 0.f ? 0.f : g.beta * row[j];
    }
    return;
  }
  if (double(g.m) * double(g.n) * double(g.k) < kParallelMinMacs) threads = 1;
  const int mr = kern.mr, nr = kern.nr;

  // Pass 1: block sizes. kc and nc are balanced so the last block is not a sliver; mc is chosen so that the number
  // of M blocks is a multiple of the thread count (equal work per thread), and when M alone gives too few blocks,
  // each nc block is also split by columns.
  // kc: a whole number of slots (pairs for a bf16-pair kernel), so that only the last block has a half-filled one.
  const int kps = kern.k_per_slot;
  const int64_t k_blocks = ceil_div(g.k, kern.kc);
  const int64_t kc = round_up(ceil_div(g.k, k_blocks), kps);
  const int64_t kc_slots = kc / kps;
  if (g.m <= kern.mc) return gemm_rows_once(kern, g, threads, kc);
  const int64_t n_blocks = ceil_div(g.n, kern.nc);
  const int64_t nc = round_up(ceil_div(g.n, n_blocks), nr);
  int64_t m_blocks = ceil_div(g.m, kern.mc);
  if (threads > 1 && m_blocks > 1) m_blocks = round_up(m_blocks, threads);
  const int64_t mc = round_up(ceil_div(g.m, m_blocks), mr);
  m_blocks = ceil_div(g.m, mc);
  const int64_t n_splits = threads > 1 && m_blocks < threads ? ceil_div(threads, m_blocks) : 1;

  ThreadPool& pool = ThreadPool::instance();
  float* b_pack = b_panels.get(kc_slots * nc);
  for (int64_t jc = 0; jc < g.n; jc += nc) {
    const int64_t nc_cur = std::min(nc, g.n - jc);
    const int64_t panels = ceil_div(nc_cur, nr);
    for (int64_t pc = 0; pc < g.k; pc += kc) {
      const int64_t kc_cur = std::min(kc, g.k - pc);
      const int64_t slots = ceil_div(kc_cur, kps);  // what the packed panels hold along k, and what the micro kernel runs
      const float beta = pc == 0 ? g.beta : 1.f;  // later k blocks add to what the first one wrote

      // Pass 2: pack B[pc:pc+kc, jc:jc+nc], the threads splitting the panels.
      const int64_t pack_tasks = std::min<int64_t>(threads, panels);
      auto pack_b = [&](int64_t t) {
        int64_t p_lo, p_hi;
        split_range(panels, pack_tasks, t, &p_lo, &p_hi);
        if (p_hi > p_lo)
          kern.pack(g.b, jc + p_lo * nr, std::min(nc_cur - p_lo * nr, (p_hi - p_lo) * nr), pc, kc_cur, nr,
                    b_pack + p_lo * nr * slots);
      };
      if (pack_tasks > 1) pool.parallel_for(pack_tasks, pack_b);
      else pack_b(0);

      // Pass 3: one task per (M block, column split): pack its A block, then sweep its tiles.
      const int64_t tasks = m_blocks * std::min(n_splits, panels);
      auto compute = [&](int64_t t) {
        const int64_t splits = std::min(n_splits, panels);
        const int64_t ic = (t / splits) * mc;
        const int64_t mc_cur = std::min(mc, g.m - ic);
        int64_t p_lo, p_hi;
        split_range(panels, splits, t % splits, &p_lo, &p_hi);
        if (p_hi <= p_lo) return;
        const int64_t cols = std::min(nc_cur - p_lo * nr, (p_hi - p_lo) * nr);  // this task's columns, from jc + p_lo · nr
        // Where the tiles go: C itself, or (half C) an f32 tile of this task's rows and columns, rounded at the end.
        const int64_t ld_out = g.half_c ? (p_hi - p_lo) * nr : g.ldc;
        float* c_out = g.half_c ? c_tile.get(mc_cur * ld_out) : g.c + ic * g.ldc + jc + p_lo * nr;
        const float beta_out = g.half_c ? 0.f : beta;
        float* a_pack = a_panels.get(mc * kc_slots);
        kern.pack(g.a, ic, mc_cur, pc, kc_cur, mr, a_pack);
        sweep_tiles(kern, slots, a_pack, b_pack + p_lo * nr * slots, c_out, ld_out, mc_cur, cols, g.alpha, beta_out);
        if (g.half_c) finish_half_tile(kern, g, c_out, ld_out, ic, mc_cur, jc + p_lo * nr, cols);
      };
      if (threads > 1 && tasks > 1) pool.parallel_for(tasks, compute);
      else for (int64_t t = 0; t < tasks; ++t) compute(t);
    }
  }
}

const void* offset(const void* base, int64_t elements, DType t) {
  return static_cast<const char*>(base) + elements * static_cast<int64_t>(dtype_size(t));
}

}  // namespace

void finish_half_row_scalar(const float* t, uint16_t* c, int64_t n, DType dtype, float beta) {
  for (int64_t j = 0; j < n; ++j) {
    float y = t[j];
    if (beta != 0.f) y += beta * half_to_f32(c[j], dtype);
    c[j] = f32_to_half(y, dtype);
  }
}

namespace {

// One batch entry z of p on `threads` threads.
void matmul_one(const GemmKernel& kern, const MatmulParams& p, int64_t z, int threads) {
  GemmProblem g;
  g.a.data = offset(p.a, z * p.stride_a, p.ab_dtype);
  g.a.dtype = p.ab_dtype;
  g.a.sx = p.trans_a ? 1 : p.lda;
  g.a.sk = p.trans_a ? p.lda : 1;
  g.b.data = offset(p.b, z * p.stride_b, p.ab_dtype);
  g.b.dtype = p.ab_dtype;
  g.b.sx = p.trans_b ? p.ldb : 1;
  g.b.sk = p.trans_b ? 1 : p.ldb;
  g.n = p.n;
  g.k = p.k;
  g.alpha = p.alpha;
  if (p.c_dtype == DType::f32) {
    g.c = static_cast<float*>(p.c) + z * p.stride_c;
    g.ldc = p.ldc;
    g.m = p.m;
    g.beta = p.beta;
    gemm_blocked(kern, g, threads);
    return;
  }
  uint16_t* c = static_cast<uint16_t*>(p.c) + z * p.stride_c;
  if (p.k > 0 && p.k <= kern.kc) {
    // f16/bf16 C with k in one block: each task rounds its own tile (gemm_blocked's half_c).
    g.m = p.m;
    g.ldc = p.ldc;
    g.beta = p.beta;
    g.half_c = c;
    g.half_dtype = p.c_dtype;
    gemm_blocked(kern, g, threads);
    return;
  }
  // f16/bf16 C over several k blocks: the f32 result of a band of rows goes to scratch (about 16 MiB at most), then
  // each row is rounded once. Banding by rows changes no element's sum, and both ways give the same bits.
  const int64_t band = std::max<int64_t>(1, std::min<int64_t>(p.m, (int64_t(1) << 22) / std::max<int64_t>(p.n, 1)));
  float* scratch = c_rows.get(band * p.n);
  const void* a0 = g.a.data;
  for (int64_t r0 = 0; r0 < p.m; r0 += band) {
    g.m = std::min(band, p.m - r0);
    g.a.data = offset(a0, r0 * g.a.sx, p.ab_dtype);
    g.c = scratch;
    g.ldc = p.n;
    g.beta = 0.f;
    gemm_blocked(kern, g, threads);
    const int64_t rows = g.m;
    auto finish = [&](int64_t t) {
      int64_t lo, hi;
      split_range(rows, threads, t, &lo, &hi);
      for (int64_t i = lo; i < hi; ++i) kern.finish_half(scratch + i * p.n, c + (r0 + i) * p.ldc, p.n, p.c_dtype, p.beta);
    };
    if (threads > 1 && rows * p.n >= (int64_t(1) << 16)) ThreadPool::instance().parallel_for(threads, finish);
    else {
      for (int64_t i = 0; i < rows; ++i) kern.finish_half(scratch + i * p.n, c + (r0 + i) * p.ldc, p.n, p.c_dtype, p.beta);
    }
  }
}

}  // namespace

void pack_panels_scalar(const PanelSource& src, int64_t x0, int64_t nx, int64_t k0, int64_t kc, int r, float* out) {
  switch (src.dtype) {
    case DType::f32: {
      const float* d = static_cast<const float*>(src.data);
      pack_panels_with([d](int64_t i) { return d[i]; }, src, x0, nx, k0, kc, r, out);
      break;
    }
    case DType::f16: {
      const uint16_t* d = static_cast<const uint16_t*>(src.data);
      pack_panels_with([d](int64_t i) { return f16_to_f32(d[i]); }, src, x0, nx, k0, kc, r, out);
      break;
    }
    case DType::bf16: {
      const uint16_t* d = static_cast<const uint16_t*>(src.data);
      pack_panels_with([d](int64_t i) { return bf16_to_f32(d[i]); }, src, x0, nx, k0, kc, r, out);
      break;
    }
    default:
      break;  // the binding admits float dtypes only
  }
}

const GemmKernel& gemm_kernel_scalar() {
  static const GemmKernel kernel{kScalarMr, kScalarNr, 64,      256, 1024, pack_panels_scalar, micro_scalar,
                                   nullptr,   0,         nullptr, 1,   finish_half_row_scalar};
  return kernel;
}

const GemmKernel& gemm_kernel_current() {
  switch (current_isa()) {
    case Isa::avx512: return gemm_kernel_avx512();
    case Isa::avx2: return gemm_kernel_avx2();
    case Isa::scalar: break;
  }
  return gemm_kernel_scalar();
}

double fma_peak_gflops(double seconds, DType ab_dtype) {
  const GemmKernel& kern = gemm_kernel_for(ab_dtype);
  if (!kern.fma_rounds) return 0;
  using clock = std::chrono::steady_clock;
  // Calibrate on one thread (about 10 ms), then run every thread for `seconds`.
  int64_t iterations = 1 << 16;
  for (;;) {
    auto t0 = clock::now();
    volatile float sink = kern.fma_rounds(iterations);
    (void)sink;
    double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > 0.01 || iterations > (int64_t(1) << 40)) {
      iterations = std::max<int64_t>(1, static_cast<int64_t>(iterations * seconds / s));
      break;
    }
    iterations *= 4;
  }
  ThreadPool& pool = ThreadPool::instance();
  std::atomic<int> sink{0};
  auto t0 = clock::now();
  pool.parallel_for(pool.size(), [&](int64_t) { sink += kern.fma_rounds(iterations) > 0.f; });
  double s = std::chrono::duration<double>(clock::now() - t0).count();
  return double(kern.flops_per_round) * double(iterations) * pool.size() / s / 1e9;
}

const GemmKernel& gemm_kernel_for(DType ab_dtype) {
#if !defined(QWENLONG_NO_AVX512BF16)
  if (ab_dtype == DType::bf16 && current_isa() == Isa::avx512 && cpu_has_avx512bf16()) return gemm_kernel_avx512bf16();
#else
  (void)ab_dtype;
#endif
  return gemm_kernel_current();
}

void matmul_cpu(const MatmulParams& p) {
  if (p.batch <= 0 || p.m <= 0 || p.n <= 0) return;
  const GemmKernel& kern = gemm_kernel_for(p.ab_dtype);
  const int threads = ThreadPool::instance().size();
  // Many small products: one task per batch entry, each on one thread. Otherwise the entries run in turn, each
  // spread over the pool. (C shared by every entry, stride_c == 0, runs in turn so the entries apply in order.)
  const double macs = double(p.m) * double(p.n) * double(p.k);
  if (p.batch > 1 && threads > 1 && p.stride_c != 0 && macs < double(1 << 22)) {
    ThreadPool::instance().parallel_for(p.batch, [&](int64_t z) { matmul_one(kern, p, z, 1); });
    return;
  }
  for (int64_t z = 0; z < p.batch; ++z) matmul_one(kern, p, z, threads);
}

}  // namespace qwenlong
