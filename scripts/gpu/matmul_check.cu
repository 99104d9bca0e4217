// matmul_check: a standalone check of matmul_cuda (no Node): correctness against a float64 host reference over a
// covering set of shapes, layouts, dtypes, strides, alpha/beta and batches, then bf16 timings with CUDA events.
//
// Build from the repository root, with a directory GEN holding qwenlong_cuda_archs.h
// (#define QWENLONG_CUDA_ARCHS "90a-real"):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I. -IGEN -DQWENLONG_HAVE_CUDA=1 \
//     scripts/gpu/matmul_check.cu cuda/matmul/matmul.cu cuda/common/device.cc -o matmul_check
// Run: ./matmul_check [--no-time] [--only-time]     (exit status 1 when any check fails)
//
// Pass rule (DESIGN.md): max |gpu - ref| <= 2 * max |naive - ref| + floor, where ref is float64 over the same
// (rounded) inputs and naive is a k-ordered f32 sum with the same epilogue and output rounding. C is poisoned with
// NaN when beta == 0 (so unwritten or read-through elements fail), and C's padding columns hold a sentinel that
// must survive.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/common/dtype.h"
#include "cuda/matmul/matmul.h"

using namespace qwenlong;

namespace {

#define CHECK_CUDA(x)                                                                              \
  do {                                                                                             \
    cudaError_t err_ = (x);                                                                        \
    if (err_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(err_)); \
      std::exit(2);                                                                                \
    }                                                                                              \
  } while (0)

// ---------------------------------------------------------------------------------------------------------------
// Host element access in any of the three float dtypes.

double get(const std::vector<uint8_t>& buf, DType t, int64_t i) {
  if (t == DType::f32) {
    float f;
    std::memcpy(&f, buf.data() + i * 4, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, buf.data() + i * 2, 2);
  return t == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
}
void set(std::vector<uint8_t>& buf, DType t, int64_t i, float v) {
  if (t == DType::f32) {
    std::memcpy(buf.data() + i * 4, &v, 4);
    return;
  }
  const uint16_t h = t == DType::bf16 ? f32_to_bf16(v) : f32_to_f16(v);
  std::memcpy(buf.data() + i * 2, &h, 2);
}
// Rounds an f32 to dtype t and back (what storing to C does).
float round_to(DType t, float v) {
  if (t == DType::bf16) return bf16_to_f32(f32_to_bf16(v));
  if (t == DType::f16) return f16_to_f32(f32_to_f16(v));
  return v;
}
void set_bits(std::vector<uint8_t>& buf, DType t, int64_t i, uint32_t bits32, uint16_t bits16) {
  if (t == DType::f32) std::memcpy(buf.data() + i * 4, &bits32, 4);
  else std::memcpy(buf.data() + i * 2, &bits16, 2);
}

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { CHECK_CUDA(cudaMalloc(&ptr, bytes < 16 ? 16 : bytes)); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// ---------------------------------------------------------------------------------------------------------------
// Correctness cases.

enum LdMode { kPacked = 0, kPadded8 = 1, kOdd = 2 };  // ld = cols | roundup(cols, 8) + 8 | cols + 3
enum BatchMode { kSingle = 0, kBatch3 = 1, kBroadcastA = 2, kBroadcastB = 3 };

struct Case {
  int64_t m, n, k;
  bool ta, tb;
  DType ab, c;
  float alpha, beta;
  LdMode ld_mode;
  BatchMode batch_mode;
  int offset;           // elements added to the A and B base pointers (1: misaligned rows)
  int64_t batch = 0;    // 0: from batch_mode
};

int64_t ld_for(int64_t cols, LdMode mode) {
  if (mode == kPadded8) return (cols + 7) / 8 * 8 + 8;
  if (mode == kOdd) return cols + 3;
  return cols < 1 ? 1 : cols;
}

struct Result {
  bool pass;
  double err_gpu, err_naive, floor, rel;
  bool aligned_path;
  std::string note;
};

// One stored operand: rows x cols per matrix with row stride ld, `count` matrices `stride` apart, base offset.
struct Operand {
  int64_t rows, cols, ld, stride, count, offset;
  int64_t elems() const { return offset + (count - 1) * stride + rows * ld; }
};

Result run_case(const Case& cs, std::mt19937_64& rng) {
  const int64_t batch = cs.batch > 0 ? cs.batch : cs.batch_mode == kSingle ? 1 : cs.batch_mode == kBatch3 ? 3 : 2;
  const size_t ab_size = dtype_size(cs.ab), c_size = dtype_size(cs.c);

  Operand A{cs.ta ? cs.k : cs.m, cs.ta ? cs.m : cs.k, 0, 0, 0, cs.offset};
  Operand B{cs.tb ? cs.n : cs.k, cs.tb ? cs.k : cs.n, 0, 0, 0, cs.offset};
  A.ld = ld_for(A.cols, cs.ld_mode);
  B.ld = ld_for(B.cols, cs.ld_mode);
  A.stride = cs.batch_mode == kBroadcastA ? 0 : (A.rows * A.ld + 7) / 8 * 8;
  B.stride = cs.batch_mode == kBroadcastB ? 0 : (B.rows * B.ld + 7) / 8 * 8;
  A.count = A.stride == 0 ? 1 : batch;
  B.count = B.stride == 0 ? 1 : batch;
  // C: packed, padded to an even row stride (paired stores), or odd strides (single stores only).
  const int64_t ldc = cs.ld_mode == kPacked ? cs.n : cs.ld_mode == kPadded8 ? (cs.n + 1) / 2 * 2 + 2 : cs.n + 3;
  Operand C{cs.m, cs.n, ldc, 0, batch, 0};
  C.stride = C.rows * C.ld + (cs.ld_mode == kOdd ? 1 : 0);
  const bool c_padded = C.ld > C.cols;

  // Inputs: random in [-1, 1) rounded to the dtype, everywhere (padding too, so reading it shows up as an error).
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::vector<uint8_t> ha(A.elems() * ab_size), hb(B.elems() * ab_size), hc(C.elems() * c_size);
  for (int64_t i = 0; i < A.elems(); ++i) set(ha, cs.ab, i, uni(rng));
  for (int64_t i = 0; i < B.elems(); ++i) set(hb, cs.ab, i, uni(rng));
  const uint32_t nan32 = 0x7fc00000u, sentinel32 = 0x4b3c614eu;  // sentinel: 12345678.0f
  const uint16_t nan16 = cs.c == DType::bf16 ? 0x7fc0 : 0x7e00, sentinel16 = 0x5a5a;
  for (int64_t z = 0; z < C.count; ++z)
    for (int64_t r = 0; r < C.rows; ++r)
      for (int64_t col = 0; col < C.ld; ++col) {
        const int64_t i = z * C.stride + r * C.ld + col;
        if (col >= C.cols) set_bits(hc, cs.c, i, sentinel32, sentinel16);
        else if (cs.beta == 0.f) set_bits(hc, cs.c, i, nan32, nan16);
        else set(hc, cs.c, i, uni(rng));
      }
  const std::vector<uint8_t> hc_before = hc;

  DeviceBuffer da(ha.size()), db(hb.size()), dc(hc.size());
  CHECK_CUDA(cudaMemcpy(da.ptr, ha.data(), ha.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(db.ptr, hb.data(), hb.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dc.ptr, hc.data(), hc.size(), cudaMemcpyHostToDevice));
  // A pageable upload may still be in flight when cudaMemcpy returns, and the kernels run on a non-blocking stream
  // that does not wait for the legacy one: finish the uploads first.
  CHECK_CUDA(cudaDeviceSynchronize());

  MatmulParams p;
  p.a = static_cast<const uint8_t*>(da.ptr) + A.offset * ab_size;
  p.b = static_cast<const uint8_t*>(db.ptr) + B.offset * ab_size;
  p.c = dc.ptr;
  p.ab_dtype = cs.ab;
  p.c_dtype = cs.c;
  p.m = cs.m;
  p.n = cs.n;
  p.k = cs.k;
  p.lda = A.ld;
  p.ldb = B.ld;
  p.ldc = C.ld;
  p.batch = batch;
  p.stride_a = A.stride;
  p.stride_b = B.stride;
  p.stride_c = C.stride;
  p.trans_a = cs.ta;
  p.trans_b = cs.tb;
  p.alpha = cs.alpha;
  p.beta = cs.beta;

  Result res{};
  res.aligned_path = reinterpret_cast<uintptr_t>(p.a) % 16 == 0 && reinterpret_cast<uintptr_t>(p.b) % 16 == 0 &&
                     p.lda % 8 == 0 && p.ldb % 8 == 0 && p.stride_a % 8 == 0 && p.stride_b % 8 == 0;
  try {
    matmul_cuda(p);
    CHECK_CUDA(cudaStreamSynchronize(compute_stream()));
  } catch (const std::exception& e) {
    res.pass = false;
    res.note = std::string("threw: ") + e.what();
    return res;
  }
  CHECK_CUDA(cudaMemcpy(hc.data(), dc.ptr, hc.size(), cudaMemcpyDeviceToHost));

  // Reference, naive f32 and comparison.
  double max_ref = 0, err_gpu = 0, err_naive = 0, sq_diff = 0, sq_ref = 0;
  bool bad = false;
  int64_t sentinel_broken = 0, nonfinite = 0;
  std::string first_nonfinite;
  std::vector<double> arow(cs.k);
  for (int64_t z = 0; z < batch; ++z) {
    const int64_t a0 = A.offset + (A.stride == 0 ? 0 : z * A.stride);
    const int64_t b0 = B.offset + (B.stride == 0 ? 0 : z * B.stride);
    for (int64_t i = 0; i < cs.m; ++i) {
      for (int64_t kk = 0; kk < cs.k; ++kk) arow[kk] = get(ha, cs.ab, a0 + (cs.ta ? kk * A.ld + i : i * A.ld + kk));
      for (int64_t j = 0; j < cs.n; ++j) {
        double sum = 0;
        float naive = 0.f;
        for (int64_t kk = 0; kk < cs.k; ++kk) {
          const double bv = get(hb, cs.ab, b0 + (cs.tb ? j * B.ld + kk : kk * B.ld + j));
          sum += arow[kk] * bv;
          naive = std::fmaf(static_cast<float>(arow[kk]), static_cast<float>(bv), naive);
        }
        const int64_t ci = z * C.stride + i * C.ld + j;
        const double c_old = cs.beta != 0.f ? get(hc_before, cs.c, ci) : 0.0;
        const double ref = cs.alpha * sum + cs.beta * c_old;
        float naive_y = cs.alpha * naive;
        if (cs.beta != 0.f) naive_y = std::fmaf(cs.beta, static_cast<float>(c_old), naive_y);
        naive_y = round_to(cs.c, naive_y);
        const double out = get(hc, cs.c, ci);
        if (!std::isfinite(out)) {
          if (nonfinite == 0) first_nonfinite = "first at (z " + std::to_string(z) + ", row " + std::to_string(i) + ", col " + std::to_string(j) + ")";
          ++nonfinite;
          bad = true;
          continue;
        }
        max_ref = std::max(max_ref, std::fabs(ref));
        err_gpu = std::max(err_gpu, std::fabs(out - ref));
        err_naive = std::max(err_naive, std::fabs(naive_y - ref));
        sq_diff += (out - ref) * (out - ref);
        sq_ref += ref * ref;
      }
      if (c_padded)
        for (int64_t col = C.cols; col < C.ld; ++col) {
          const int64_t ci = z * C.stride + i * C.ld + col;
          if (std::memcmp(hc.data() + ci * c_size, hc_before.data() + ci * c_size, c_size) != 0) ++sentinel_broken;
        }
    }
  }
  res.err_gpu = err_gpu;
  res.err_naive = err_naive;
  res.floor = 1e-6 * max_ref + 1e-30;
  res.rel = sq_ref > 0 ? std::sqrt(sq_diff / sq_ref) : std::sqrt(sq_diff);
  res.pass = !bad && sentinel_broken == 0 && err_gpu <= 2 * err_naive + res.floor;
  if (nonfinite) res.note += " non-finite outputs: " + std::to_string(nonfinite) + ", " + first_nonfinite;
  if (sentinel_broken) res.note += " writes outside C: " + std::to_string(sentinel_broken);
  return res;
}

const char* layout_name(bool ta, bool tb) { return ta ? (tb ? "TT" : "TN") : (tb ? "NT" : "NN"); }

int run_checks() {
  std::mt19937_64 rng(20240611);
  struct Shape { int64_t m, n, k; };
  const Shape shapes[] = {{1, 1, 1},     {7, 7, 7},      {1, 1000, 63}, {1000, 1, 65},  {63, 65, 129},
                          {65, 63, 7},   {129, 130, 1000}, {128, 128, 32}, {256, 128, 64}, {129, 1000, 1},
                          {17, 33, 8},   {200, 300, 0},  {33, 65, 200}, {250, 260, 520}};
  const DType dtypes[] = {DType::bf16, DType::f16, DType::f32};
  const float alphas[] = {1.f, 0.75f, -1.5f}, betas[] = {0.f, -0.5f, 1.f};

  std::vector<Case> cases;
  int v = 0;
  for (const Shape& s : shapes)
    for (DType t : dtypes)
      for (int layout = 0; layout < 4; ++layout, ++v) {
        Case cs{s.m, s.n, s.k, (layout & 2) != 0, (layout & 1) != 0, t, DType::f32, 1.f, 0.f, kPacked, kSingle, 0};
        cs.c = (t != DType::f32 && (v / 2) % 2 == 1) ? t : DType::f32;
        cs.alpha = alphas[(v / 3) % 3];
        cs.beta = betas[(v / 3 + v / 9) % 3];
        cs.ld_mode = static_cast<LdMode>(v % 3);
        cs.batch_mode = static_cast<BatchMode>((v / 4) % 4);
        cs.offset = v % 5 == 4 ? 1 : 0;
        cases.push_back(cs);
      }
  // Every layout and dtype on both tensor-core paths with several k tiles and ragged edges.
  for (DType t : {DType::bf16, DType::f16})
    for (int layout = 0; layout < 4; ++layout)
      for (int offset = 0; offset < 2; ++offset)
        cases.push_back(Case{300, 200, 333, (layout & 2) != 0, (layout & 1) != 0, t, t, 1.25f, 0.5f, kPadded8,
                             kBatch3, offset});
  // More batches than gridDim.z holds (the kernels loop over z), and k = 0 with beta != 0 (C = beta * C).
  cases.push_back(Case{5, 6, 9, false, true, DType::bf16, DType::f32, 1.f, 0.f, kPacked, kBatch3, 0, 70000});
  cases.push_back(Case{5, 6, 9, true, false, DType::f32, DType::f32, 1.f, 1.f, kPacked, kBatch3, 0, 66000});
  cases.push_back(Case{40, 50, 0, false, false, DType::bf16, DType::bf16, 2.f, -1.f, kPacked, kBatch3, 0});

  int failed = 0;
  std::printf("%-4s %-4s %-4s %-3s %5s %5s %5s %5s %5s ld batch off path  %9s %9s %9s  result\n", "#", "ab", "c",
              "lay", "M", "N", "K", "alpha", "beta", "err_gpu", "err_naive", "rel_l2");
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& cs = cases[i];
    const Result r = run_case(cs, rng);
    if (!r.pass) ++failed;
    const char* batch_names[] = {"1", "3", "bcA", "bcB"};
    const std::string batch_name = cs.batch > 0 ? std::to_string(cs.batch) : batch_names[cs.batch_mode];
    std::printf("%-4zu %-4s %-4s %-3s %5lld %5lld %5lld %5.2f %5.2f %-2d %-5s %-3d %-5s %9.2e %9.2e %9.2e  %s%s\n", i,
                dtype_name(cs.ab), dtype_name(cs.c), layout_name(cs.ta, cs.tb), static_cast<long long>(cs.m),
                static_cast<long long>(cs.n), static_cast<long long>(cs.k), cs.alpha, cs.beta,
                static_cast<int>(cs.ld_mode), batch_name.c_str(), cs.offset,
                cs.ab == DType::f32 ? "simt" : r.aligned_path ? "async" : "plain", r.err_gpu, r.err_naive, r.rel,
                r.pass ? "ok" : "FAIL", r.note.c_str());
  }
  std::printf("\ncorrectness: %zu cases, %d failed\n", cases.size(), failed);
  return failed;
}

// ---------------------------------------------------------------------------------------------------------------
// Timing.

// Uniform [-1, 1) from a hash of the index, stored as bf16 (kind 0), f16 (1) or f32 (2).
__global__ void fill_random(void* out, int64_t n, uint64_t seed, int kind) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t x = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const float u = static_cast<float>(x >> 40) * (1.f / 16777216.f) * 2.f - 1.f;  // [-1, 1)
    if (kind == 2) static_cast<float*>(out)[i] = u;
    else if (kind == 0) static_cast<uint16_t*>(out)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(u));
    else static_cast<uint16_t*>(out)[i] = __half_as_ushort(__float2half_rn(u));
  }
}

struct TimedShape {
  const char* name;
  int64_t m, n, k;
  bool ta, tb;
};

int run_timings() {
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("\ndevice: %s, %d SMs, sm_%d%d\n", prop.name, prop.multiProcessorCount, prop.major, prop.minor);
  const double peak_tflops = 989.0;  // H100 SXM dense bf16
  const TimedShape shapes[] = {
      {"square", 4096, 4096, 4096, false, false},      {"square", 4096, 4096, 4096, false, true},
      {"square", 4096, 4096, 4096, true, false},       {"lm-head fwd", 4096, 32768, 1024, false, true},
      {"lm-head dX", 4096, 1024, 32768, false, false}, {"lm-head dW", 32768, 1024, 4096, true, false},
  };
  const int warmup = 3, repeats = 20;
  int failed = 0;
  std::printf("%-12s %6s %6s %6s %-3s %10s %9s %7s  %s\n", "shape", "M", "N", "K", "lay", "median_ms", "TFLOP/s",
              "of_peak", "sampled check");
  for (const TimedShape& s : shapes) {
    const int64_t a_elems = s.m * s.k, b_elems = s.k * s.n, c_elems = s.m * s.n;
    DeviceBuffer da(a_elems * 2), db(b_elems * 2), dc(c_elems * 2);
    fill_random<<<1024, 256>>>(da.ptr, a_elems, 0x1234, 0);
    fill_random<<<1024, 256>>>(db.ptr, b_elems, 0x5678, 0);
    CHECK_CUDA(cudaGetLastError());
    CHECK_CUDA(cudaDeviceSynchronize());
    MatmulParams p;
    p.a = da.ptr;
    p.b = db.ptr;
    p.c = dc.ptr;
    p.ab_dtype = DType::bf16;
    p.c_dtype = DType::bf16;
    p.m = s.m;
    p.n = s.n;
    p.k = s.k;
    p.lda = s.ta ? s.m : s.k;
    p.ldb = s.tb ? s.k : s.n;
    p.ldc = s.n;
    p.trans_a = s.ta;
    p.trans_b = s.tb;
    cudaStream_t stream = compute_stream();
    cudaEvent_t start, stop;
    CHECK_CUDA(cudaEventCreate(&start));
    CHECK_CUDA(cudaEventCreate(&stop));
    std::vector<float> ms;
    try {
      for (int r = 0; r < warmup + repeats; ++r) {
        CHECK_CUDA(cudaEventRecord(start, stream));
        matmul_cuda(p);
        CHECK_CUDA(cudaEventRecord(stop, stream));
        CHECK_CUDA(cudaEventSynchronize(stop));
        float t = 0;
        CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
        if (r >= warmup) ms.push_back(t);
      }
    } catch (const std::exception& e) {
      std::printf("%-12s threw: %s\n", s.name, e.what());
      ++failed;
      continue;
    }
    CHECK_CUDA(cudaEventDestroy(start));
    CHECK_CUDA(cudaEventDestroy(stop));
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    const double tflops = 2.0 * s.m * s.n * s.k / (med * 1e-3) / 1e12;

    // Sampled check: 256 outputs against float64 dot products (bf16 output: relative error ~ 2^-8).
    std::vector<uint16_t> ha(a_elems), hb(b_elems), hc(c_elems);
    CHECK_CUDA(cudaMemcpy(ha.data(), da.ptr, a_elems * 2, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(hb.data(), db.ptr, b_elems * 2, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(hc.data(), dc.ptr, c_elems * 2, cudaMemcpyDeviceToHost));
    std::mt19937_64 rng(99);
    double worst = 0;
    for (int q = 0; q < 256; ++q) {
      const int64_t i = rng() % s.m, j = rng() % s.n;
      double sum = 0, mag = 0;
      for (int64_t kk = 0; kk < s.k; ++kk) {
        const double av = bf16_to_f32(ha[s.ta ? kk * s.m + i : i * s.k + kk]);
        const double bv = bf16_to_f32(hb[s.tb ? j * s.k + kk : kk * s.n + j]);
        sum += av * bv;
        mag += std::fabs(av * bv);
      }
      const double out = bf16_to_f32(hc[i * s.n + j]);
      // bf16 output rounding (2^-9 relative) plus f32 accumulation slack, scaled by the sum of |terms|.
      const double err = std::fabs(out - sum) / (std::fabs(sum) * std::ldexp(1.0, -8) + mag * 1e-6 + 1e-30);
      worst = std::isfinite(out) ? std::max(worst, err) : 1e30;
    }
    const bool ok = worst <= 1.0;
    if (!ok) ++failed;
    std::printf("%-12s %6lld %6lld %6lld %-3s %10.3f %9.1f %6.1f%%  %s (worst %.2f of tolerance)\n", s.name,
                static_cast<long long>(s.m), static_cast<long long>(s.n), static_cast<long long>(s.k),
                layout_name(s.ta, s.tb), med, tflops, 100.0 * tflops / peak_tflops, ok ? "ok" : "FAIL", worst);
  }

  // f32 SIMT kernel at 4096^3 (H100 SXM f32 non-tensor peak: 66.9 TFLOP/s).
  {
    const int64_t n = 4096;
    DeviceBuffer da(n * n * 4), db(n * n * 4), dc(n * n * 4);
    fill_random<<<1024, 256>>>(da.ptr, n * n, 0x9abc, 2);
    fill_random<<<1024, 256>>>(db.ptr, n * n, 0xdef0, 2);
    CHECK_CUDA(cudaGetLastError());
    MatmulParams p;
    p.a = da.ptr;
    p.b = db.ptr;
    p.c = dc.ptr;
    p.m = p.n = p.k = n;
    p.lda = p.ldb = p.ldc = n;
    cudaStream_t stream = compute_stream();
    cudaEvent_t start, stop;
    CHECK_CUDA(cudaEventCreate(&start));
    CHECK_CUDA(cudaEventCreate(&stop));
    std::vector<float> ms;
    for (int r = 0; r < 2 + 5; ++r) {
      CHECK_CUDA(cudaEventRecord(start, stream));
      matmul_cuda(p);
      CHECK_CUDA(cudaEventRecord(stop, stream));
      CHECK_CUDA(cudaEventSynchronize(stop));
      float t = 0;
      CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
      if (r >= 2) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2], tflops = 2.0 * n * n * n / (med * 1e-3) / 1e12;
    std::printf("%-12s %6lld %6lld %6lld %-3s %10.3f %9.1f %6.1f%%  (f32 SIMT, of 66.9 TFLOP/s)\n", "f32 square",
                static_cast<long long>(n), static_cast<long long>(n), static_cast<long long>(n), "NN", med, tflops,
                100.0 * tflops / 66.9);
  }
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  bool time = true, check = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-time") == 0) time = false;
    else if (std::strcmp(argv[i], "--only-time") == 0) check = false;
  }
  const CudaStatus& st = cuda_status();
  if (!st.available) {
    std::fprintf(stderr, "CUDA not available: %s\n", st.reason.c_str());
    return 2;
  }
  int failed = 0;
  if (check) failed += run_checks();
  if (time) failed += run_timings();
  std::printf("\n%s\n", failed ? "FAILED" : "ALL OK");
  return failed ? 1 : 0;
}
