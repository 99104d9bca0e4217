// Pieces shared by the attention forward and backward kernels: the kernel argument block, sequence bounds,
// the causal key limit, and the tensor-core primitives (cp.async, ldmatrix, mma.sync m16n8k16).
#pragma once
#include <type_traits>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>

#include "cuda/attention/attention.h"
#include "cuda/common/cuda_elem.cuh"
#include "cuda/common/cuda_util.h"

namespace qwenlong {
namespace attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// What every kernel reads: AttentionParams with the element pointers untyped and the sizes narrowed.
struct Args {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;
  const void* dout;
  const float* lse_in;
  const void* out_in;
  void* dq;
  void* dk;
  void* dv;
  float* delta;  // (Hq, totalQ): sum_d dout * out, written by the backward's first kernel
  const int32_t* cu_q;  // nullptr: one sequence of total_q queries and total_k keys
  const int32_t* cu_k;
  int64_t total_q, total_k;
  int hq, hkv, group, d;  // group = Hq / Hkv
  float scale, scale_log2;
  bool causal;
};

inline Args make_args(const AttentionParams& p) {
  Args a;
  a.q = p.q; a.k = p.k; a.v = p.v; a.out = p.out; a.lse = p.lse;
  a.dout = p.dout; a.lse_in = p.lse_in; a.out_in = p.out_in;
  a.dq = p.dq; a.dk = p.dk; a.dv = p.dv; a.delta = nullptr;
  a.cu_q = p.cu_seqlens_q; a.cu_k = p.cu_seqlens_k;
  a.total_q = p.total_q; a.total_k = p.total_k;
  a.hq = static_cast<int>(p.heads_q); a.hkv = static_cast<int>(p.heads_kv);
  a.group = static_cast<int>(p.heads_q / p.heads_kv); a.d = static_cast<int>(p.head_dim);
  a.scale = p.scale; a.scale_log2 = p.scale * kLog2e; a.causal = p.causal;
  return a;
}

// Checks shared by the forward and backward launchers; `op` names the op in messages.
inline void check_params(const AttentionParams& p, const char* op) {
  if (!dtype_is_float(p.dtype)) throw_type(std::string(op) + ": unsupported dtype " + dtype_name(p.dtype));
  if (p.head_dim < 1 || p.head_dim > 256)
    throw_range(std::string(op) + ": head dim " + std::to_string(p.head_dim) + " is outside 1..256");
  if (p.heads_kv < 1 || p.heads_q < 1 || p.heads_q % p.heads_kv != 0)
    throw_range(std::string(op) + ": heads_q must be a positive multiple of heads_kv");
  if (p.heads_q > 65535 || p.batch < 1 || p.batch > 65535)
    throw_range(std::string(op) + ": at most 65535 heads and 1..65535 sequences per call");
  if (p.total_q > INT32_MAX || p.total_k > INT32_MAX || p.max_seqlen_q > INT32_MAX || p.max_seqlen_k > INT32_MAX)
    throw_range(std::string(op) + ": more than 2^31 - 1 rows");
  if (p.batch > 1 && (!p.cu_seqlens_q || !p.cu_seqlens_k))
    throw_range(std::string(op) + ": a batch of several sequences needs cu_seqlens_q and cu_seqlens_k");
}

inline bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

// One sequence of the packed batch: rows [q0, q0 + len_q) of q and [k0, k0 + len_k) of k.
struct Seq {
  int q0, len_q, k0, len_k;
  int off;  // len_k - len_q: under causal, query i sees keys j <= i + off (bottom-right alignment)
};

__device__ __forceinline__ Seq load_seq(const Args& a, int b) {
  Seq s;
  if (a.cu_q) {
    s.q0 = a.cu_q[b];
    s.len_q = a.cu_q[b + 1] - s.q0;
    s.k0 = a.cu_k[b];
    s.len_k = a.cu_k[b + 1] - s.k0;
  } else {
    s.q0 = 0; s.len_q = static_cast<int>(a.total_q);
    s.k0 = 0; s.len_k = static_cast<int>(a.total_k);
  }
  s.off = s.len_k - s.len_q;
  return s;
}

// Keys [0, key_end) can be seen by query rows [i0, i1) (i1 > i0); 0 when none can.
__device__ __forceinline__ int key_end_for(const Seq& s, bool causal, int i1) {
  if (!causal) return s.len_k;
  const int last = i1 - 1 + s.off;  // the last key the last row sees
  return last < 0 ? 0 : min(s.len_k, last + 1);
}

// The first query that sees key j0 (causal), or 0.
__device__ __forceinline__ int query_begin_for(const Seq& s, bool causal, int j0) {
  return causal ? max(0, j0 - s.off) : 0;
}

// 2^x on the special-function unit; 2^-inf = +0.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// One online-softmax step on an m16n8 accumulator tile held by a warp: sc holds NS 8-key column tiles of scores
// (log2 domain; elements 0-1 row g, 2-3 row g + 8; a row's scores spread over the 4 lanes of its quad), m and l the
// two rows' running max and this lane's part of their sums, o the output tiles. The new row max comes from the quad,
// o and l are rescaled, and sc becomes p = 2^(s - m) with l += p. A row with no visible key yet keeps p = 0, not NaN.
template <int NS, int NO>
__device__ __forceinline__ void online_softmax(float (&sc)[NS][4], float (&m)[2], float (&l)[2], float (&o)[NO][4]) {
  float mx[2] = {m[0], m[1]};
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    mx[0] = fmaxf(mx[0], fmaxf(sc[n][0], sc[n][1]));
    mx[1] = fmaxf(mx[1], fmaxf(sc[n][2], sc[n][3]));
  }
  float m_use[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    m_use[r] = mx[r] == -INFINITY ? 0.f : mx[r];
    const float alpha = fast_exp2(m[r] - m_use[r]);
    m[r] = mx[r];
    l[r] *= alpha;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      o[n][2 * r] *= alpha;
      o[n][2 * r + 1] *= alpha;
    }
  }
#pragma unroll
  for (int n = 0; n < NS; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float p = fast_exp2(sc[n][e] - m_use[e >> 1]);
      sc[n][e] = p;
      l[e >> 1] += p;
    }
  }
}

// ---- tensor-core primitives (sm_80+) ----

// 16-byte global -> shared copy; when !valid the 16 bytes are zero-filled and nothing is read.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i receives its fragment.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}

// c (16x8 f32) += a (16x16) * b (16x8). Fragments as in the PTX ISA: with g = lane / 4, t = lane % 4,
// a: {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)}; b: {(k 2t..2t+1, n g), (k 2t+8.., n g)};
// c: {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
template <typename T> __device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats to a b16x2 register (x in the low half), rounding to nearest even.
template <typename T> __device__ __forceinline__ uint32_t pack2(float x, float y);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float x, float y) {
  __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float x, float y) {
  __half2 h = __floats2half2_rn(x, y);
  return *reinterpret_cast<uint32_t*>(&h);
}

// Copies rows [0, ROWS) x columns [0, kD) of a (rows, row_stride) tensor into shared memory (row stride kS
// elements) with cp.async; rows >= rows_valid and columns >= d come out zero. d is a multiple of 8.
template <typename T, int ROWS, int kD, int kS, int kThreads>
__device__ __forceinline__ void load_tile_async(T* smem, const T* gmem, int64_t row_stride, int rows_valid, int d,
                                                const void* any_valid_address) {
  constexpr int kChunks = kD / 8;  // 16-byte chunks per row
  const int real_chunks = d / 8;
#pragma unroll
  for (int idx = threadIdx.x; idx < ROWS * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    const bool valid = r < rows_valid && c < real_chunks;
    const void* src = valid ? static_cast<const void*>(gmem + r * row_stride + c * 8) : any_valid_address;
    cp_async16(smem + r * kS + c * 8, src, valid);
  }
}

// Writes rows [0, rows_valid) x columns [0, d) of a shared tile (row stride kS) to global memory, 16 bytes
// per access. ROWS rows are spread over the kThreads threads that call it.
template <typename T, int ROWS, int kD, int kS, int kThreads>
__device__ __forceinline__ void store_tile(T* gmem, int64_t row_stride, const T* smem, int rows_valid, int d, int thread) {
  constexpr int kChunks = kD / 8;
  const int real_chunks = d / 8;
#pragma unroll
  for (int idx = thread; idx < ROWS * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    if (r < rows_valid && c < real_chunks)
      *reinterpret_cast<uint4*>(gmem + r * row_stride + c * 8) = *reinterpret_cast<const uint4*>(smem + r * kS + c * 8);
  }
}

// The padded head dim a tensor-core kernel runs with: the smallest of 16, 32, 64, 128 that holds d.
inline int padded_dim(int64_t d) { return d <= 16 ? 16 : d <= 32 ? 32 : d <= 64 ? 64 : 128; }

// Calls launch(std::integral_constant<int, D>{}) with the tensor-core kernel's padded head dim D (16..128).
template <typename Launch>
void with_padded_dim(int64_t head_dim, Launch&& launch) {
  switch (padded_dim(head_dim)) {
    case 16: launch(std::integral_constant<int, 16>{}); break;
    case 32: launch(std::integral_constant<int, 32>{}); break;
    case 64: launch(std::integral_constant<int, 64>{}); break;
    default: launch(std::integral_constant<int, 128>{}); break;
  }
}

// Calls launch(std::integral_constant<int, W>{}) with the generic kernel's head-dim elements per lane W
// (1 up to D = 32, 2 up to 64, 4 up to 128, 8 up to 256).
template <typename Launch>
void with_simt_width(int64_t head_dim, Launch&& launch) {
  if (head_dim <= 32) launch(std::integral_constant<int, 1>{});
  else if (head_dim <= 64) launch(std::integral_constant<int, 2>{});
  else if (head_dim <= 128) launch(std::integral_constant<int, 4>{});
  else launch(std::integral_constant<int, 8>{});
}

// Raises a kernel's dynamic shared-memory limit when it needs more than the default 48 KB.
template <typename Kernel>
void set_smem(Kernel kernel, size_t bytes, const char* op) {
  if (bytes > 48 * 1024) check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), op);
}

}  // namespace attn
}  // namespace qwenlong
