// Standalone check and timing of the CUDA attention kernels (no Node): forward and backward against a float64
// host reference over a covering set of shapes, then bf16 D=128 timings.
// Build (from the repository root; GEN holds qwenlong_cuda_archs.h, as the CMake build generates it):
//   nvcc -std=c++17 -O3 -arch=sm_90a -I. -IGEN -DQWENLONG_HAVE_CUDA=1 scripts/gpu/attention_check.cu \
//     cuda/attention/attention_fwd.cu cuda/attention/attention_bwd.cu cuda/common/device.cc -o attention_check
// Run: ./attention_check [--no-timing] [--timing-only]. Exit status 1 when any check fails.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/attention/attention.h"
#include "cuda/common/cuda_util.h"
#include "cuda/common/device.h"
#include "cuda/common/dtype.h"

using namespace qwenlong;

namespace {

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                             \
    }                                                                                           \
  } while (0)

// Host values rounded to the dtype, and their device encoding.
struct HostTensor {
  std::vector<double> val;        // the value the kernel sees (already rounded to the dtype)
  std::vector<unsigned char> raw; // its encoding
};

HostTensor make_random(size_t n, DType t, std::mt19937_64& rng, double amplitude) {
  std::normal_distribution<double> dist(0.0, amplitude);
  HostTensor h;
  h.val.resize(n);
  h.raw.resize(n * dtype_size(t));
  for (size_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(dist(rng));
    if (t == DType::f32) {
      std::memcpy(&h.raw[i * 4], &f, 4);
      h.val[i] = f;
    } else {
      const uint16_t b = t == DType::bf16 ? f32_to_bf16(f) : f32_to_f16(f);
      std::memcpy(&h.raw[i * 2], &b, 2);
      h.val[i] = t == DType::bf16 ? bf16_to_f32(b) : f16_to_f32(b);
    }
  }
  return h;
}

std::vector<double> decode(const std::vector<unsigned char>& raw, DType t) {
  const size_t n = raw.size() / dtype_size(t);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::f32) {
      float f;
      std::memcpy(&f, &raw[i * 4], 4);
      out[i] = f;
    } else {
      uint16_t b;
      std::memcpy(&b, &raw[i * 2], 2);
      out[i] = t == DType::bf16 ? bf16_to_f32(b) : f16_to_f32(b);
    }
  }
  return out;
}

struct Device_buf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Device_buf(size_t n) : bytes(n) { CK(cudaMalloc(&p, std::max<size_t>(n, 16))); }
  ~Device_buf() { cudaFree(p); }
  // cudaMemcpy from pageable memory can return before the data lands, and the kernels run on a non-blocking stream.
  void upload(const void* src) { if (bytes) { CK(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice)); CK(cudaDeviceSynchronize()); } }
  void poison() { CK(cudaMemset(p, 0xff, std::max<size_t>(bytes, 16))); }  // NaN in f32, f16 and bf16
  std::vector<unsigned char> download() const {
    std::vector<unsigned char> h(bytes);
    if (bytes) CK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDeviceToHost));
    return h;
  }
};

struct Case {
  std::string name;
  std::vector<int> lens_q, lens_k;
  int hq, hkv, d;
  bool causal;
  DType dtype;
  bool packed = true;  // false: cu_seqlens omitted (one sequence)
};

// Float64 reference of the forward and backward for one case.
struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

Reference reference(const Case& c, const std::vector<int>& cu_q, const std::vector<int>& cu_k, const HostTensor& q,
                    const HostTensor& k, const HostTensor& v, const HostTensor& dout, double scale) {
  const int total_q = cu_q.back(), total_k = cu_k.back(), D = c.d, group = c.hq / c.hkv;
  Reference r;
  r.out.assign(size_t(total_q) * c.hq * D, 0.0);
  r.lse.assign(size_t(c.hq) * total_q, INFINITY);
  r.dq.assign(r.out.size(), 0.0);
  r.dk.assign(size_t(total_k) * c.hkv * D, 0.0);
  r.dv.assign(r.dk.size(), 0.0);
  // dk/dv of one kv head get contributions from several query heads: one thread per kv head keeps it race-free.
  auto work = [&](int kvh) {
    for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
      for (size_t b = 0; b + 1 < cu_q.size(); ++b) {
        const int q0 = cu_q[b], lq = cu_q[b + 1] - q0, k0 = cu_k[b], lk = cu_k[b + 1] - k0, off = lk - lq;
        std::vector<double> p(lk), dp(lk);
        for (int i = 0; i < lq; ++i) {
          const double* qi = &q.val[(size_t(q0 + i) * c.hq + h) * D];
          const int jend = c.causal ? std::min(lk, std::max(0, i + off + 1)) : lk;
          if (jend == 0) continue;
          double mx = -INFINITY;
          for (int j = 0; j < jend; ++j) {
            const double* kj = &k.val[(size_t(k0 + j) * c.hkv + kvh) * D];
            double s = 0;
            for (int d = 0; d < D; ++d) s += qi[d] * kj[d];
            p[j] = s * scale;
            mx = std::max(mx, p[j]);
          }
          double sum = 0;
          for (int j = 0; j < jend; ++j) sum += (p[j] = std::exp(p[j] - mx));
          for (int j = 0; j < jend; ++j) p[j] /= sum;
          r.lse[size_t(h) * total_q + q0 + i] = mx + std::log(sum);
          double* oi = &r.out[(size_t(q0 + i) * c.hq + h) * D];
          for (int j = 0; j < jend; ++j) {
            const double* vj = &v.val[(size_t(k0 + j) * c.hkv + kvh) * D];
            for (int d = 0; d < D; ++d) oi[d] += p[j] * vj[d];
          }
          const double* doi = &dout.val[(size_t(q0 + i) * c.hq + h) * D];
          double delta = 0;
          for (int d = 0; d < D; ++d) delta += doi[d] * oi[d];
          double* dqi = &r.dq[(size_t(q0 + i) * c.hq + h) * D];
          for (int j = 0; j < jend; ++j) {
            const size_t kv_at = (size_t(k0 + j) * c.hkv + kvh) * D;
            const double* vj = &v.val[kv_at];
            const double* kj = &k.val[kv_at];
            double dpj = 0;
            for (int d = 0; d < D; ++d) dpj += doi[d] * vj[d];
            const double ds = p[j] * (dpj - delta) * scale;
            for (int d = 0; d < D; ++d) {
              r.dv[kv_at + d] += p[j] * doi[d];
              r.dk[kv_at + d] += ds * qi[d];
              dqi[d] += ds * kj[d];
            }
          }
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int kvh = 0; kvh < c.hkv; ++kvh) threads.emplace_back(work, kvh);
  for (auto& t : threads) t.join();
  return r;
}

struct Err {
  double rel = 0, max_abs = 0;
  long nan = 0;
};

Err compare(const std::vector<double>& got, const std::vector<double>& ref) {
  Err e;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(got[i])) { ++e.nan; continue; }
    const double d = got[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
  }
  e.rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return e;
}

// Relative L2 bounds: forward and gradients, by dtype (rounding of bf16/f16 inputs of each product, f32 sums).
double fwd_bound(DType t) { return t == DType::f32 ? 1e-5 : t == DType::f16 ? 3e-3 : 1.5e-2; }
double bwd_bound(DType t) { return t == DType::f32 ? 1e-4 : t == DType::f16 ? 1e-2 : 4e-2; }

bool run_case(const Case& c, std::mt19937_64& rng) {
  const size_t B = c.lens_q.size();
  std::vector<int> cu_q(B + 1, 0), cu_k(B + 1, 0);
  int max_q = 0, max_k = 0;
  for (size_t b = 0; b < B; ++b) {
    cu_q[b + 1] = cu_q[b] + c.lens_q[b];
    cu_k[b + 1] = cu_k[b] + c.lens_k[b];
    max_q = std::max(max_q, c.lens_q[b]);
    max_k = std::max(max_k, c.lens_k[b]);
  }
  const int total_q = cu_q.back(), total_k = cu_k.back();
  const size_t es = dtype_size(c.dtype);
  const size_t nq = size_t(total_q) * c.hq * c.d, nk = size_t(total_k) * c.hkv * c.d;
  const double scale = 1.0 / std::sqrt(double(c.d));
  HostTensor q = make_random(nq, c.dtype, rng, 1.0), k = make_random(nk, c.dtype, rng, 1.0),
             v = make_random(nk, c.dtype, rng, 1.0), dout = make_random(nq, c.dtype, rng, 1.0);

  Device_buf dq_in(nq * es), dk_in(nk * es), dv_in(nk * es), ddout(nq * es), dout_buf(nq * es),
      dlse(size_t(c.hq) * total_q * 4), ddq(nq * es), ddk(nk * es), ddv(nk * es), dcu_q((B + 1) * 4), dcu_k((B + 1) * 4);
  dq_in.upload(q.raw.data());
  dk_in.upload(k.raw.data());
  dv_in.upload(v.raw.data());
  ddout.upload(dout.raw.data());
  dcu_q.upload(cu_q.data());
  dcu_k.upload(cu_k.data());

  AttentionParams p;
  p.q = dq_in.p; p.k = dk_in.p; p.v = dv_in.p; p.out = dout_buf.p; p.lse = static_cast<float*>(dlse.p);
  p.cu_seqlens_q = c.packed ? static_cast<const int32_t*>(dcu_q.p) : nullptr;
  p.cu_seqlens_k = c.packed ? static_cast<const int32_t*>(dcu_k.p) : nullptr;
  p.batch = static_cast<int64_t>(B);
  p.total_q = total_q; p.total_k = total_k;
  p.heads_q = c.hq; p.heads_kv = c.hkv; p.head_dim = c.d;
  p.max_seqlen_q = max_q; p.max_seqlen_k = max_k;
  p.scale = static_cast<float>(scale);
  p.causal = c.causal;
  p.dtype = c.dtype;

  dout_buf.poison();
  dlse.poison();
  attention_forward_cuda(p);
  cuda_synchronize("forward");
  const std::vector<double> out = decode(dout_buf.download(), c.dtype);
  std::vector<double> lse(size_t(c.hq) * total_q);
  {
    std::vector<unsigned char> raw = dlse.download();
    for (size_t i = 0; i < lse.size(); ++i) { float f; std::memcpy(&f, &raw[i * 4], 4); lse[i] = f; }
  }

  p.dout = ddout.p; p.out_in = dout_buf.p; p.lse_in = static_cast<const float*>(dlse.p);
  p.dq = ddq.p; p.dk = ddk.p; p.dv = ddv.p;
  ddq.poison(); ddk.poison(); ddv.poison();
  attention_backward_cuda(p);
  cuda_synchronize("backward");
  const std::vector<unsigned char> dq_raw = ddq.download(), dk_raw = ddk.download(), dv_raw = ddv.download();
  // Determinism: a second backward gives the same bits.
  ddq.poison(); ddk.poison(); ddv.poison();
  attention_backward_cuda(p);
  cuda_synchronize("backward (again)");
  const bool same = dq_raw == ddq.download() && dk_raw == ddk.download() && dv_raw == ddv.download();

  const Reference ref = reference(c, cu_q, cu_k, q, k, v, dout, scale);
  const Err eo = compare(out, ref.out), eq = compare(decode(dq_raw, c.dtype), ref.dq),
            ek = compare(decode(dk_raw, c.dtype), ref.dk), ev = compare(decode(dv_raw, c.dtype), ref.dv);
  // lse: +inf exactly where the reference has +inf; elsewhere close (f32 arithmetic on the same inputs).
  long lse_bad = 0;
  double lse_err = 0;
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) { lse_bad += !(std::isinf(lse[i]) && lse[i] > 0); continue; }
    if (!std::isfinite(lse[i])) { ++lse_bad; continue; }
    lse_err = std::max(lse_err, std::fabs(lse[i] - ref.lse[i]) / (1.0 + std::fabs(ref.lse[i])));
  }
  const double lse_bound = c.dtype == DType::f32 ? 1e-5 : 1e-3;
  const bool ok = eo.nan == 0 && eq.nan == 0 && ek.nan == 0 && ev.nan == 0 && lse_bad == 0 && lse_err <= lse_bound &&
                  eo.rel <= fwd_bound(c.dtype) && eq.rel <= bwd_bound(c.dtype) && ek.rel <= bwd_bound(c.dtype) &&
                  ev.rel <= bwd_bound(c.dtype) && same;
  std::printf("%-4s %-44s out %.2e  lse %.1e  dq %.2e  dk %.2e  dv %.2e  nan %ld/%ld/%ld/%ld  lse-bad %ld  %s\n",
              ok ? "ok" : "FAIL", c.name.c_str(), eo.rel, lse_err, eq.rel, ek.rel, ev.rel, eo.nan, eq.nan, ek.nan, ev.nan,
              lse_bad, same ? "deterministic" : "NOT DETERMINISTIC");
  return ok;
}

std::vector<Case> covering_set() {
  const DType bf = DType::bf16, hf = DType::f16, f32 = DType::f32;
  std::vector<Case> cs;
  auto one = [](int lq, int lk) { return std::pair<std::vector<int>, std::vector<int>>{{lq}, {lk}}; };
  auto add = [&](const char* tag, std::pair<std::vector<int>, std::vector<int>> lens, int hq, int hkv, int d, bool causal,
                 DType t, bool packed = true) {
    Case c;
    c.lens_q = lens.first; c.lens_k = lens.second; c.hq = hq; c.hkv = hkv; c.d = d; c.causal = causal; c.dtype = t;
    c.packed = packed;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s %s D%d %d:%d%s", tag, dtype_name(t), d, hq, hkv, causal ? " causal" : "");
    c.name = buf;
    cs.push_back(c);
  };
  // Tensor-core path (bf16/f16, D multiple of 8 up to 128).
  add("L1", one(1, 1), 1, 1, 64, false, bf);
  add("L1", one(1, 1), 6, 2, 128, true, hf);
  add("L7", one(7, 7), 6, 2, 8, true, hf);
  add("L7", one(7, 7), 6, 1, 16, false, bf);
  add("L113", one(113, 113), 6, 2, 64, true, bf);
  add("L113", one(113, 113), 6, 1, 32, false, hf);
  add("L203", one(203, 203), 6, 2, 96, true, bf);
  add("L1023", one(1023, 1023), 6, 2, 128, true, bf);
  add("L1023", one(1023, 1023), 6, 1, 64, false, hf);
  add("L1025", one(1025, 1025), 2, 1, 128, false, bf);
  add("ragged{37,0,130,64}", {{37, 0, 130, 64}, {37, 0, 130, 64}}, 6, 2, 64, true, bf);
  add("ragged{37,0,130,64}", {{37, 0, 130, 64}, {37, 0, 130, 64}}, 6, 1, 128, false, hf);
  add("q{50,200,17,0} k{120,90,0,33}", {{50, 200, 17, 0}, {120, 90, 0, 33}}, 6, 2, 64, true, bf);
  add("q{50,200,17,0} k{120,90,0,33}", {{50, 200, 17, 0}, {120, 90, 0, 33}}, 6, 1, 128, true, hf);
  add("q100 k40", one(100, 40), 6, 2, 8, true, hf);
  add("q40 k300", one(40, 300), 6, 2, 128, true, bf);
  add("L300 unpacked", one(300, 300), 6, 2, 128, true, bf, false);
  // Generic path: D not a multiple of 8, D > 128, f32.
  add("L113", one(113, 113), 6, 2, 59, true, bf);
  add("L203", one(203, 203), 6, 1, 59, false, hf);
  add("L70", one(70, 70), 2, 1, 256, true, hf);
  add("L1", one(1, 1), 1, 1, 1, false, f32);
  add("L7", one(7, 7), 6, 2, 8, true, f32);
  add("L113", one(113, 113), 6, 2, 64, true, f32);
  add("L1023", one(1023, 1023), 6, 2, 128, false, f32);
  add("ragged{37,0,130,64}", {{37, 0, 130, 64}, {37, 0, 130, 64}}, 6, 1, 59, true, f32);
  add("q{50,200,17,0} k{120,90,0,33}", {{50, 200, 17, 0}, {120, 90, 0, 33}}, 6, 2, 200, true, f32);
  return cs;
}

// ---- timing ----

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void timing() {
  const int H = 16, D = 128;
  const int total = 16384;
  std::printf("\ntiming: bf16, D=%d, Hq=Hkv=%d, batch = 16384 / T tokens (medians of CUDA-event times)\n", D, H);
  std::printf("%-7s %-7s %10s %10s %8s %10s %10s %8s\n", "T", "causal", "fwd ms", "fwd TF/s", "of 989", "bwd ms", "bwd TF/s",
              "of 989");
  std::mt19937_64 rng(7);
  const size_t n = size_t(total) * H * D;
  HostTensor q = make_random(n, DType::bf16, rng, 1.0), k = make_random(n, DType::bf16, rng, 1.0),
             v = make_random(n, DType::bf16, rng, 1.0), dout = make_random(n, DType::bf16, rng, 1.0);
  Device_buf dq_in(n * 2), dk_in(n * 2), dv_in(n * 2), ddout(n * 2), dout_buf(n * 2), dlse(size_t(H) * total * 4),
      ddq(n * 2), ddk(n * 2), ddv(n * 2), dcu((total / 1024 + 1) * 4);
  dq_in.upload(q.raw.data());
  dk_in.upload(k.raw.data());
  dv_in.upload(v.raw.data());
  ddout.upload(dout.raw.data());
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int T : {1024, 4096, 16384}) {
    for (bool causal : {false, true}) {
      const int B = total / T;
      std::vector<int> cu(B + 1);
      for (int b = 0; b <= B; ++b) cu[b] = b * T;
      CK(cudaMemcpy(dcu.p, cu.data(), cu.size() * 4, cudaMemcpyHostToDevice));
      CK(cudaDeviceSynchronize());
      AttentionParams p;
      p.q = dq_in.p; p.k = dk_in.p; p.v = dv_in.p; p.out = dout_buf.p; p.lse = static_cast<float*>(dlse.p);
      p.dout = ddout.p; p.out_in = dout_buf.p; p.lse_in = static_cast<const float*>(dlse.p);
      p.dq = ddq.p; p.dk = ddk.p; p.dv = ddv.p;
      p.cu_seqlens_q = p.cu_seqlens_k = static_cast<const int32_t*>(dcu.p);
      p.batch = B; p.total_q = p.total_k = total; p.heads_q = p.heads_kv = H; p.head_dim = D;
      p.max_seqlen_q = p.max_seqlen_k = T; p.scale = 1.f / std::sqrt(float(D)); p.causal = causal; p.dtype = DType::bf16;
      auto time = [&](auto&& fn) {
        for (int i = 0; i < 3; ++i) fn();
        std::vector<float> ms;
        for (int i = 0; i < 15; ++i) {
          CK(cudaEventRecord(e0, compute_stream()));
          fn();
          CK(cudaEventRecord(e1, compute_stream()));
          CK(cudaEventSynchronize(e1));
          float t;
          CK(cudaEventElapsedTime(&t, e0, e1));
          ms.push_back(t);
        }
        cuda_synchronize("timing");
        return median(ms);
      };
      const float fwd = time([&] { attention_forward_cuda(p); });
      const float bwd = time([&] { attention_backward_cuda(p); });
      const double flops = 4.0 * double(T) * T * H * D * B / (causal ? 2 : 1);
      const double tf_f = flops / (fwd * 1e-3) / 1e12, tf_b = 2.5 * flops / (bwd * 1e-3) / 1e12;
      std::printf("%-7d %-7s %10.3f %10.1f %7.1f%% %10.3f %10.1f %7.1f%%\n", T, causal ? "yes" : "no", fwd, tf_f,
                  100 * tf_f / 989, bwd, tf_b, 100 * tf_b / 989);
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

}  // namespace

int main(int argc, char** argv) {
  bool checks = true, times = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-timing")) times = false;
    if (!std::strcmp(argv[i], "--timing-only")) checks = false;
  }
  const CudaStatus& st = cuda_status();
  if (!st.available) {
    std::printf("no usable CUDA device: %s\n", st.reason.c_str());
    return 2;
  }
  std::printf("device: %s (sm_%d%d)\n", st.devices.empty() ? "?" : st.devices[0].name.c_str(),
              st.devices.empty() ? 0 : st.devices[0].major, st.devices.empty() ? 0 : st.devices[0].minor);
  int failed = 0;
  if (checks) {
    std::mt19937_64 rng(std::random_device{}());  // fresh inputs every run
    for (const Case& c : covering_set()) {
      try {
        failed += !run_case(c, rng);
      } catch (const std::exception& e) {
        std::printf("FAIL %s: %s\n", c.name.c_str(), e.what());
        ++failed;
      }
    }
    std::printf("%d case(s) failed\n", failed);
  }
  if (times) timing();
  return failed ? 1 : 0;
}
