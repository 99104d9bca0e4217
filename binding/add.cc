// N-API glue for add: add(a, b | null, out | null, alpha, beta) -> out
#include "cuda/add/add.h"

#include <string>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"
#include "binding/tensor_handle.h"

namespace qwenlong {

namespace {

Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* op = "ops.add";
  TensorHandle* a = unwrap_tensor(info, 0, op, "a");
  TensorHandle* b = unwrap_optional_tensor(info, 1, op, "b");
  AddParams p;
  p.alpha = finite_float_arg(info, 3, op, "alpha");
  p.beta = finite_float_arg(info, 4, op, "beta");
  if (!dtype_is_float(a->dtype()))
    throw_type(std::string(op) + ": argument 'a' has dtype " + dtype_name(a->dtype()) + "; add takes f32, f16 or bf16");
  if (b) check_like(b, a, op, "b");
  TensorHandle* out = nullptr;
  Napi::Value result = output_arg(info, 2, op, "out", a->device(), a->dtype(), a->shape(), &out);
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
