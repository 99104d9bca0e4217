// N-API glue for add: add(a, b | null, out | null, alpha, beta) -> out
#include "cuda/add/add.h"

#include <string>

#include "binding/guard.h"
#include "binding/ops.h"
#include "binding/tensor_handle.h"

namespace qwenlong {

namespace {

void check_like(const TensorHandle* t, const TensorHandle* ref, const char* op, const char* arg) {
  if (t->dtype() != ref->dtype())
    throw_type(std::string(op) + ": argument '" + arg + "' has dtype " + dtype_name(t->dtype()) + ", expected " + dtype_name(ref->dtype()));
  if (t->device() != ref->device())
    throw_type(std::string(op) + ": argument '" + arg + "' is on " + device_name(t->device()) + ", expected " + device_name(ref->device()));
  if (t->numel() != ref->numel())
    throw_range(std::string(op) + ": argument '" + arg + "' has " + std::to_string(t->numel()) + " elements, expected " +
                std::to_string(ref->numel()));
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* op = "ops.add";
  TensorHandle* a = unwrap_tensor(info, 0, op, "a");
  TensorHandle* b = unwrap_optional_tensor(info, 1, op, "b");
  TensorHandle* out = unwrap_optional_tensor(info, 2, op, "out");
  AddParams p;
  p.alpha = finite_float_arg(info, 3, op, "alpha");
  p.beta = finite_float_arg(info, 4, op, "beta");
  if (!dtype_is_float(a->dtype()))
    throw_type(std::string(op) + ": argument 'a' has dtype " + dtype_name(a->dtype()) + "; add takes f32, f16 or bf16");
  if (b) check_like(b, a, op, "b");
  Napi::Value result;
  if (out) {
    check_like(out, a, op, "out");
    result = info[2];
  } else {
    result = TensorHandle::Create(info.Env(), Storage::allocate(a->device(), a->nbytes()), a->dtype(), a->shape());
    out = TensorHandle::Unwrap(result.As<Napi::Object>());
  }
  p.a = a->data();
  p.b = b ? b->data() : nullptr;
  p.out = out->data();
  p.n = a->numel();
  p.dtype = a->dtype();
  dispatch(a->device(), op, [&] { add_cpu(p); }, [&] { QWENLONG_CUDA_CALL(add_cuda(p)); });
  return result;
}

}  // namespace

void register_add(Napi::Env env, Napi::Object exports) {
  exports.Set("add", Napi::Function::New<guarded<Add>>(env, "add"));
}

}  // namespace qwenlong
