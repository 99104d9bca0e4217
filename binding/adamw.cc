// N-API glue for adamw and the global gradient norm.
//   adamw(params, grads, m, v, paramsCopy | null, lr, beta1, beta2, eps, weightDecay, step, gradScale) -> undefined (in place)
//   gradNorm(tensors[], clip, maxNorm) -> norm, a () f32 tensor on the tensors' device
#include "cuda/adamw/adamw.h"

#include <cmath>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"
#include "cuda/grad_norm/grad_norm.h"

namespace qwenlong {

namespace {

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  const char* op = "ops.adamw";
  TensorHandle* params = unwrap_tensor(info, 0, op, "params");
  TensorHandle* grads = unwrap_tensor(info, 1, op, "grads");
  TensorHandle* m = unwrap_tensor(info, 2, op, "m");
  TensorHandle* v = unwrap_tensor(info, 3, op, "v");
  TensorHandle* copy = unwrap_optional_tensor(info, 4, op, "paramsCopy");
  check_dtype(params, {DType::f32}, op, "params");
  check_dtype(grads, {DType::f32, DType::f16, DType::bf16}, op, "grads");
  check_same_device(grads, params, op, "grads");
  check_numel(grads, params->numel(), op, "grads");
  check_like(m, params, op, "m");
  check_like(v, params, op, "v");
  if (m == v || m == params || v == params) throw_range(std::string(op) + ": 'params', 'm' and 'v' must be different tensors");
  if (copy) {
    check_dtype(copy, {DType::f16, DType::bf16}, op, "paramsCopy");
    check_same_device(copy, params, op, "paramsCopy");
    check_numel(copy, params->numel(), op, "paramsCopy");
  }
  AdamwParams p;
  p.lr = finite_float_arg(info, 5, op, "lr");
  p.beta1 = finite_float_arg(info, 6, op, "beta1");
  p.beta2 = finite_float_arg(info, 7, op, "beta2");
  p.eps = finite_float_arg(info, 8, op, "eps");
  p.weight_decay = finite_float_arg(info, 9, op, "weightDecay");
  const double step = number_arg(info, 10, op, "step");
  p.grad_scale = finite_float_arg(info, 11, op, "gradScale");
  if (!(p.lr >= 0)) throw_range(std::string(op) + ": argument 'lr' must be >= 0");
  if (!(p.beta1 >= 0 && p.beta1 < 1)) throw_range(std::string(op) + ": argument 'beta1' must be in [0, 1)");
  if (!(p.beta2 >= 0 && p.beta2 < 1)) throw_range(std::string(op) + ": argument 'beta2' must be in [0, 1)");
  if (!(p.eps > 0)) throw_range(std::string(op) + ": argument 'eps' must be > 0");
  if (!(p.weight_decay >= 0)) throw_range(std::string(op) + ": argument 'weightDecay' must be >= 0");
  if (!(step >= 1 && step <= 9007199254740991.0) || step != std::floor(step))
    throw_range(std::string(op) + ": argument 'step' must be an integer >= 1");
  p.params = static_cast<float*>(params->data());
  p.grads = grads->data();
  p.m = static_cast<float*>(m->data());
  p.v = static_cast<float*>(v->data());
  p.params_copy = copy ? copy->data() : nullptr;
  p.grad_dtype = grads->dtype();
  p.copy_dtype = copy ? copy->dtype() : DType::bf16;
  p.n = params->numel();
  p.step = static_cast<int64_t>(step);
  dispatch(params->device(), op, [&] { adamw_cpu(p); }, [&] { QWENLONG_CUDA_CALL(adamw_cuda(p)); });
  return info.Env().Undefined();
}

Napi::Value GradNorm(const Napi::CallbackInfo& info) {
  const bool clip = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  const char* op = clip ? "ops.clipGrad" : "ops.gradNorm";
  if (info.Length() < 1 || !info[0].IsArray()) throw_type(std::string(op) + ": argument 'tensors' must be an array of Tensors");
  Napi::Array list = info[0].As<Napi::Array>();
  if (list.Length() == 0) throw_range(std::string(op) + ": argument 'tensors' is empty");
  GradNormParams p;
  p.clip = clip;
  if (clip) {
    p.max_norm = finite_float_arg(info, 2, op, "maxNorm");
    if (!(p.max_norm > 0)) throw_range(std::string(op) + ": argument 'maxNorm' must be > 0");
  }
  Device device = Device::cpu;
  // Every item read before any is looked up: reading one can run JavaScript (a getter, a proxy) that could dispose
  // a tensor already taken.
  std::vector<Napi::Value> items;
  for (uint32_t i = 0, n = list.Length(); i < n; ++i) items.push_back(list.Get(i));
  std::vector<const void*> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    Napi::Value item = items[i];
    const std::string arg = "tensors[" + std::to_string(i) + "]";
    TensorHandle* t = unwrap_tensor_value(info.Env(), item, op, arg.c_str());
    check_dtype(t, {DType::f32, DType::f16, DType::bf16}, op, arg.c_str());
    if (i == 0) device = t->device();
    else if (t->device() != device) throw_type(std::string(op) + ": argument '" + arg + "' is on " + device_name(t->device()) + ", the first on " + device_name(device));
    for (const void* s : seen)  // the same memory twice, through one tensor or two views of it
      if (clip && t->numel() > 0 && s == t->data()) throw_range(std::string(op) + ": argument '" + arg + "' appears twice (it would be scaled twice)");
    seen.push_back(t->data());
    p.tensors.push_back(GradTensor{t->data(), t->numel(), t->dtype()});
  }
  TensorHandle* norm = nullptr;
  Napi::Value result = new_tensor(info.Env(), device, DType::f32, {}, &norm);
  p.norm = static_cast<float*>(norm->data());
  dispatch(device, op, [&] { grad_norm_cpu(p); }, [&] { QWENLONG_CUDA_CALL(grad_norm_cuda(p)); });
  return result;
}

}  // namespace

void register_adamw(Napi::Env env, Napi::Object exports) {
  exports.Set("adamw", Napi::Function::New<guarded<Adamw>>(env, "adamw"));
  exports.Set("gradNorm", Napi::Function::New<guarded<GradNorm>>(env, "gradNorm"));
}

}  // namespace qwenlong
