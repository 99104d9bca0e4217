// N-API glue for the fused policy loss.
//   policyLoss(hidden, weight, targets, coef, advantages, oldLogp | null, mask, temperature, clipLow, clipHigh,
//              dualClip, workspaceBytes, wantGrads, dHidden | null, dWeight | null)
//     -> [loss, nll, logp, entropy, dHidden | null, dWeight | null]
#include "cuda/policy_loss/policy_loss.h"

#include <cmath>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

TensorHandle* per_token(const Napi::CallbackInfo& info, size_t index, const char* arg, DType dtype, const TensorHandle* hidden, int64_t tokens,
                        bool optional = false) {
  const char* op = "ops.policyLoss";
  TensorHandle* t = optional ? unwrap_optional_tensor(info, index, op, arg) : unwrap_tensor(info, index, op, arg);
  if (!t) return nullptr;
  check_dtype(t, {dtype}, op, arg);
  check_same_device(t, hidden, op, arg);
  check_numel(t, tokens, op, arg);
  return t;
}

Napi::Value PolicyLoss(const Napi::CallbackInfo& info) {
  const char* op = "ops.policyLoss";
  TensorHandle* hidden = unwrap_tensor(info, 0, op, "hidden");
  TensorHandle* weight = unwrap_tensor(info, 1, op, "weight");
  check_dtype(hidden, {DType::f32, DType::f16, DType::bf16}, op, "hidden");
  if (hidden->shape().size() != 2) throw_range(std::string(op) + ": argument 'hidden' must have shape (T, H)");
  check_same_dtype(weight, hidden, op, "weight");
  check_same_device(weight, hidden, op, "weight");
  if (weight->shape().size() != 2 || weight->shape()[1] != hidden->shape()[1])
    throw_range(std::string(op) + ": argument 'weight' must have shape (V, " + std::to_string(hidden->shape()[1]) + ")");
  const int64_t T = hidden->shape()[0], H = hidden->shape()[1], V = weight->shape()[0];
  if (V == 0) throw_range(std::string(op) + ": argument 'weight' has an empty vocabulary");
  if (V > 2147483647) throw_range(std::string(op) + ": the vocabulary exceeds 2^31 - 1 rows");
  TensorHandle* targets = per_token(info, 2, "targets", DType::i32, hidden, T);
  TensorHandle* coef = per_token(info, 3, "coef", DType::f32, hidden, T);
  TensorHandle* advantages = per_token(info, 4, "advantages", DType::f32, hidden, T);
  TensorHandle* old_logp = per_token(info, 5, "oldLogp", DType::f32, hidden, T, true);
  TensorHandle* mask = per_token(info, 6, "mask", DType::f32, hidden, T);
  PolicyLossParams p;
  p.temperature = finite_float_arg(info, 7, op, "temperature");
  p.clip_low = finite_float_arg(info, 8, op, "clipLow");
  p.clip_high = finite_float_arg(info, 9, op, "clipHigh");
  p.dual_clip = finite_float_arg(info, 10, op, "dualClip");
  const double workspace = number_arg(info, 11, op, "workspaceBytes");
  const bool want_grads = bool_arg(info, 12, op, "wantGrads");
  if (!(p.temperature > 0)) throw_range(std::string(op) + ": argument 'temperature' must be > 0");
  if (!(p.clip_low >= 0 && p.clip_low < 1) || !(p.clip_high >= 0)) throw_range(std::string(op) + ": 'clipLow' must be in [0, 1) and 'clipHigh' >= 0");
  if (!(p.dual_clip == 0 || p.dual_clip > 1)) throw_range(std::string(op) + ": 'dualClip' must be 0 (off) or > 1");
  if (!(workspace >= 1 && workspace <= 1e12)) throw_range(std::string(op) + ": 'workspaceBytes' must be from 1 to 1e12");
  // Targets are read as indices: check them on the host (a device check would need a sync anyway).
  if (targets->device() == Device::cpu) {
    const int32_t* tg = static_cast<const int32_t*>(targets->data());
    for (int64_t t = 0; t < T; ++t)
      if (tg[t] < 0 || tg[t] >= V)
        throw_range(std::string(op) + ": targets[" + std::to_string(t) + "] = " + std::to_string(tg[t]) + " is outside [0, " + std::to_string(V) + ")");
  }
  const Device dev = hidden->device();
  Napi::Env env = info.Env();
  TensorHandle *loss = nullptr, *nll = nullptr, *logp = nullptr, *entropy = nullptr, *dh = nullptr, *dw = nullptr;
  Napi::Value dh_value = env.Null(), dw_value = env.Null();
  if (want_grads) {
    dh_value = output_arg(info, 13, op, "dHidden", dev, DType::f32, {T, H}, &dh);
    dw_value = output_arg(info, 14, op, "dWeight", dev, DType::f32, {V, H}, &dw);
  }
  Napi::Value loss_value = new_tensor(env, dev, DType::f32, {}, &loss);
  Napi::Value nll_value = new_tensor(env, dev, DType::f32, {}, &nll);
  Napi::Value logp_value = new_tensor(env, dev, DType::f32, {T}, &logp);
  Napi::Value entropy_value = new_tensor(env, dev, DType::f32, {T}, &entropy);
  p.hidden = hidden->data();
  p.weight = weight->data();
  p.targets = static_cast<const int32_t*>(targets->data());
  p.coef = static_cast<const float*>(coef->data());
  p.advantages = static_cast<const float*>(advantages->data());
  p.old_logp = old_logp ? static_cast<const float*>(old_logp->data()) : nullptr;
  p.mask = static_cast<const float*>(mask->data());
  p.logp = static_cast<float*>(logp->data());
  p.entropy = static_cast<float*>(entropy->data());
  p.loss = static_cast<float*>(loss->data());
  p.nll = static_cast<float*>(nll->data());
  p.d_hidden = dh ? static_cast<float*>(dh->data()) : nullptr;
  p.d_weight = dw ? static_cast<float*>(dw->data()) : nullptr;
  p.tokens = T;
  p.hidden_size = H;
  p.vocab = V;
  p.dtype = hidden->dtype();
  p.workspace_bytes = static_cast<int64_t>(workspace);
  dispatch(dev, op, [&] { policy_loss_cpu(p); }, [&] { QWENLONG_CUDA_CALL(policy_loss_cuda(p)); });
  Napi::Array result = Napi::Array::New(env, 6);
  result.Set(0u, loss_value);
  result.Set(1u, nll_value);
  result.Set(2u, logp_value);
  result.Set(3u, entropy_value);
  result.Set(4u, dh_value);
  result.Set(5u, dw_value);
  return result;
}

}  // namespace

void register_policy_loss(Napi::Env env, Napi::Object exports) {
  exports.Set("policyLoss", Napi::Function::New<guarded<PolicyLoss>>(env, "policyLoss"));
}

}  // namespace qwenlong
