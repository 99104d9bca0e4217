// N-API glue for cast: cast(x, out | null, dtype) -> out
#include "cuda/cast/cast.h"

#include <string>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"
#include "binding/tensor_handle.h"

namespace qwenlong {

namespace {

Napi::Value Cast(const Napi::CallbackInfo& info) {
  const char* op = "ops.cast";
  TensorHandle* x = unwrap_tensor(info, 0, op, "x");
  if (!dtype_is_float(x->dtype()))
    throw_type(std::string(op) + ": argument 'x' has dtype " + dtype_name(x->dtype()) + "; cast takes f32, f16 or bf16");
  const std::string name = string_arg(info, 2, op, "dtype");
  DType to;
  if (!dtype_from_name(name, &to) || !dtype_is_float(to)) throw_type(std::string(op) + ": argument 'dtype' must be 'f32', 'f16' or 'bf16', not '" + name + "'");
  TensorHandle* out = nullptr;
  Napi::Value result = output_arg(info, 1, op, "out", x->device(), to, x->shape(), &out);
  CastParams p;
  p.x = x->data();
  p.out = out->data();
  p.n = x->numel();
  p.from = x->dtype();
  p.to = to;
  dispatch(x->device(), op, [&] { cast_cpu(p); }, [&] { QWENLONG_CUDA_CALL(cast_cuda(p)); });
  return result;
}

}  // namespace

void register_cast(Napi::Env env, Napi::Object exports) {
  exports.Set("cast", Napi::Function::New<guarded<Cast>>(env, "cast"));
}

}  // namespace qwenlong
