// N-API glue for swiglu.
//   swiglu(gate, up, out | null) -> out
//   swigluBackward(dout, gate, up, dgate | null, dup | null) -> [dgate, dup]
#include "cuda/swiglu/swiglu.h"

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const char* op = "ops.swiglu";
  TensorHandle* gate = unwrap_tensor(info, 0, op, "gate");
  TensorHandle* up = unwrap_tensor(info, 1, op, "up");
  check_dtype(gate, {DType::f32, DType::f16, DType::bf16}, op, "gate");
  check_like(up, gate, op, "up");
  TensorHandle* out = nullptr;
  Napi::Value result = output_arg(info, 2, op, "out", gate->device(), gate->dtype(), gate->shape(), &out);
  SwigluParams p;
  p.gate = gate->data();
  p.up = up->data();
  p.out = out->data();
  p.n = gate->numel();
  p.dtype = gate->dtype();
  dispatch(gate->device(), op, [&] { swiglu_forward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(swiglu_forward_cuda(p)); });
  return result;
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  const char* op = "ops.swigluBackward";
  TensorHandle* dout = unwrap_tensor(info, 0, op, "dout");
  TensorHandle* gate = unwrap_tensor(info, 1, op, "gate");
  TensorHandle* up = unwrap_tensor(info, 2, op, "up");
  check_dtype(gate, {DType::f32, DType::f16, DType::bf16}, op, "gate");
  check_like(up, gate, op, "up");
  check_like(dout, gate, op, "dout");
  TensorHandle *dgate = nullptr, *dup = nullptr;
  Napi::Value dgate_value = output_arg(info, 3, op, "dgate", gate->device(), gate->dtype(), gate->shape(), &dgate);
  Napi::Value dup_value = output_arg(info, 4, op, "dup", gate->device(), gate->dtype(), gate->shape(), &dup);
  if (dgate == dup) throw_range(std::string(op) + ": 'dgate' and 'dup' must be different tensors");
  SwigluParams p;
  p.gate = gate->data();
  p.up = up->data();
  p.dout = dout->data();
  p.dgate = dgate->data();
  p.dup = dup->data();
  p.n = gate->numel();
  p.dtype = gate->dtype();
  dispatch(gate->device(), op, [&] { swiglu_backward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(swiglu_backward_cuda(p)); });
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, dgate_value);
  result.Set(1u, dup_value);
  return result;
}

}  // namespace

void register_swiglu(Napi::Env env, Napi::Object exports) {
  exports.Set("swiglu", Napi::Function::New<guarded<Swiglu>>(env, "swiglu"));
  exports.Set("swigluBackward", Napi::Function::New<guarded<SwigluBackward>>(env, "swigluBackward"));
}

}  // namespace qwenlong
