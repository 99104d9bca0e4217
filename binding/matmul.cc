// N-API glue for matmul: matmul(a, b, out | null, transA, transB, alpha, beta, outDtype | null) -> out
//   a: (M, K), or (K, M) when transA; optionally batched (Bt, ·, ·)
//   b: (K, N), or (N, K) when transB; optionally batched (Bt, ·, ·); a 2-D operand is shared by every batch entry
//   out: (M, N), or (Bt, M, N) when either operand is batched; f32 or the inputs' dtype
#include "cuda/matmul/matmul.h"
#include "cuda/matmul/matmul_cpu.h"

#include <string>
#include <vector>

#include "binding/guard.h"
#include "binding/ops.h"
#include "binding/tensor_handle.h"

namespace qwenlong {

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool bool_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (!info[index].IsBoolean()) throw_type(std::string(op) + ": argument '" + arg + "' must be a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

// A 2-D or 3-D float operand on `device`.
void check_operand(const TensorHandle* t, const char* op, const char* arg) {
  if (!dtype_is_float(t->dtype()))
    throw_type(std::string(op) + ": argument '" + arg + "' is " + dtype_name(t->dtype()) + "; " + op + " takes f32, f16 or bf16");
  if (t->shape().size() != 2 && t->shape().size() != 3)
    throw_range(std::string(op) + ": argument '" + arg + "' has shape " + shape_string(t->shape()) +
                "; expected 2 dimensions (rows, columns) or 3 (batch, rows, columns)");
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const char* op = "ops.matmul";
  TensorHandle* a = unwrap_tensor(info, 0, op, "a");
  TensorHandle* b = unwrap_tensor(info, 1, op, "b");
  TensorHandle* out = unwrap_optional_tensor(info, 2, op, "out");
  MatmulParams p;
  p.trans_a = bool_arg(info, 3, op, "transA");
  p.trans_b = bool_arg(info, 4, op, "transB");
  p.alpha = finite_float_arg(info, 5, op, "alpha");
  p.beta = finite_float_arg(info, 6, op, "beta");
  check_operand(a, op, "a");
  check_operand(b, op, "b");
  if (b->dtype() != a->dtype())
    throw_type(std::string(op) + ": argument 'b' is " + dtype_name(b->dtype()) + ", expected " + dtype_name(a->dtype()) + " (the dtype of 'a')");
  if (b->device() != a->device())
    throw_type(std::string(op) + ": argument 'b' is on " + device_name(b->device()) + ", expected " + device_name(a->device()));

  // Shapes: the last two dimensions are the matrix, a leading one the batch.
  const auto& sa = a->shape();
  const auto& sb = b->shape();
  const bool batched_a = sa.size() == 3, batched_b = sb.size() == 3;
  const int64_t a_rows = sa[sa.size() - 2], a_cols = sa[sa.size() - 1];
  const int64_t b_rows = sb[sb.size() - 2], b_cols = sb[sb.size() - 1];
  p.m = p.trans_a ? a_cols : a_rows;
  p.k = p.trans_a ? a_rows : a_cols;
  const int64_t kb = p.trans_b ? b_cols : b_rows;
  p.n = p.trans_b ? b_rows : b_cols;
  if (kb != p.k)
    throw_range(std::string(op) + ": argument 'b' has shape " + shape_string(sb) + (p.trans_b ? " (transposed)" : "") + ", whose K = " +
                std::to_string(kb) + " does not match K = " + std::to_string(p.k) + " of 'a' " + shape_string(sa) + (p.trans_a ? " (transposed)" : ""));
  if (batched_a && batched_b && sa[0] != sb[0])
    throw_range(std::string(op) + ": argument 'b' has batch " + std::to_string(sb[0]) + ", expected " + std::to_string(sa[0]) + " (the batch of 'a') or a 2-D 'b'");
  p.batch = batched_a ? sa[0] : batched_b ? sb[0] : 1;
  std::vector<int64_t> c_shape{p.m, p.n};
  if (batched_a || batched_b) c_shape.insert(c_shape.begin(), p.batch);

  DType c_dtype = a->dtype();
  const bool explicit_dtype = !info[7].IsUndefined() && !info[7].IsNull();
  if (explicit_dtype) {
    std::string name = string_arg(info, 7, op, "outDtype");
    if (!dtype_from_name(name, &c_dtype) || (c_dtype != DType::f32 && c_dtype != a->dtype()))
      throw_type(std::string(op) + ": argument 'outDtype' must be 'f32'" + (a->dtype() == DType::f32 ? std::string() : std::string(" or '") + dtype_name(a->dtype()) + "'") +
                 " (f32 or the inputs' dtype), not '" + name + "'");
  }
  Napi::Value result;
  if (out) {
    if (out->device() != a->device())
      throw_type(std::string(op) + ": argument 'out' is on " + device_name(out->device()) + ", expected " + device_name(a->device()));
    if (out->shape() != c_shape)
      throw_range(std::string(op) + ": argument 'out' has shape " + shape_string(out->shape()) + ", expected " + shape_string(c_shape));
    if (explicit_dtype ? out->dtype() != c_dtype : (out->dtype() != DType::f32 && out->dtype() != a->dtype()))
      throw_type(std::string(op) + ": argument 'out' is " + dtype_name(out->dtype()) + ", expected " +
                 (explicit_dtype || a->dtype() == DType::f32 ? std::string(dtype_name(c_dtype)) : "f32 or " + std::string(dtype_name(a->dtype()))));
    if (out->nbytes() > 0 && (out->data() == a->data() || out->data() == b->data()))
      throw_range(std::string(op) + ": argument 'out' must not be 'a' or 'b' (the product cannot be written over its inputs)");
    c_dtype = out->dtype();
    result = info[2];
  } else {
    if (p.beta != 0.f) throw_range(std::string(op) + ": argument 'beta' is " + std::to_string(p.beta) + " but there is no 'out' to scale; pass out or beta = 0");
    double elements = 1;
    for (int64_t d : c_shape) elements *= static_cast<double>(d);
    if (elements > double(int64_t(1) << 40))
      throw_range(std::string(op) + ": the result " + shape_string(c_shape) + " would have more than 2^40 elements");
    const size_t bytes = static_cast<size_t>(elements) * dtype_size(c_dtype);
    result = TensorHandle::Create(info.Env(), Storage::allocate(a->device(), bytes), c_dtype, c_shape, &out);
  }

  p.a = a->data();
  p.b = b->data();
  p.c = out->data();
  p.ab_dtype = a->dtype();
  p.c_dtype = c_dtype;
  p.lda = a_cols;
  p.ldb = b_cols;
  p.ldc = p.n;
  p.stride_a = batched_a ? a_rows * a_cols : 0;
  p.stride_b = batched_b ? b_rows * b_cols : 0;
  p.stride_c = p.m * p.n;
  dispatch(a->device(), op, [&] { matmul_cpu(p); }, [&] { QWENLONG_CUDA_CALL(matmul_cuda(p)); });
  return result;
}

// fmaPeak(seconds, dtype = 'f32') -> GFLOP/s: the CPU's multiply-add peak on every pool thread for the kernel that
// multiplies operands of `dtype` (f32: the FMA of the current ISA; bf16: the bf16 dot product where the CPU has
// one), as the benchmarks' denominator.
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  double seconds = number_arg(info, 0, "fmaPeak", "seconds");
  if (!(seconds > 0 && seconds <= 10)) throw_range("fmaPeak: argument 'seconds' must be in (0, 10]");
  DType dtype = DType::f32;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    const std::string name = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    if (!dtype_from_name(name, &dtype) || (dtype != DType::f32 && dtype != DType::bf16 && dtype != DType::f16))
      throw_type("fmaPeak: argument 'dtype' must be f32, bf16 or f16");
  }
  return Napi::Number::New(info.Env(), fma_peak_gflops(seconds, dtype));
}

}  // namespace

void register_matmul(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New<guarded<Matmul>>(env, "matmul"));
  exports.Set("fmaPeak", Napi::Function::New<guarded<FmaPeak>>(env, "fmaPeak"));
}

}  // namespace qwenlong
