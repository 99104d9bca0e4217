// N-API glue for rmsnorm.
//   rmsNorm(x, w, eps, y | null, rrms | null) -> [y, rrms]
//   rmsNormBackward(dy, x, w, rrms, dx | null, dw | null, wantDw, accumulateDw) -> [dx, dw | null]
#include "cuda/rmsnorm/rmsnorm.h"

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

// Checks x (rows, C) and w (C); returns C.
int64_t check_x_w(const TensorHandle* x, const TensorHandle* w, const char* op) {
  check_dtype(x, {DType::f32, DType::f16, DType::bf16}, op, "x");
  const int64_t cols = last_dim(x, op, "x");
  if (cols == 0) throw_range(std::string(op) + ": argument 'x' has an empty last dimension");
  check_same_dtype(w, x, op, "w");
  check_same_device(w, x, op, "w");
  if (w->shape().size() != 1 || w->numel() != cols)
    throw_range(std::string(op) + ": argument 'w' must have shape [" + std::to_string(cols) + "] (x's last dimension)");
  return cols;
}

std::vector<int64_t> rows_shape(const TensorHandle* x) { return std::vector<int64_t>(x->shape().begin(), x->shape().end() - 1); }

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const char* op = "ops.rmsNorm";
  TensorHandle* x = unwrap_tensor(info, 0, op, "x");
  TensorHandle* w = unwrap_tensor(info, 1, op, "w");
  const int64_t cols = check_x_w(x, w, op);
  const double eps = number_arg(info, 2, op, "eps");
  if (!(eps > 0 && eps < 1)) throw_range(std::string(op) + ": argument 'eps' must be in (0, 1)");
  TensorHandle *y = nullptr, *rrms = nullptr;
  Napi::Value y_value = output_arg(info, 3, op, "y", x->device(), x->dtype(), x->shape(), &y);
  Napi::Value rrms_value = output_arg(info, 4, op, "rrms", x->device(), DType::f32, rows_shape(x), &rrms);
  RmsNormParams p;
  p.x = x->data();
  p.w = w->data();
  p.y = y->data();
  p.rrms = static_cast<float*>(rrms->data());
  p.rows = x->numel() / cols;
  p.cols = cols;
  p.eps = static_cast<float>(eps);
  p.dtype = x->dtype();
  dispatch(x->device(), op, [&] { rmsnorm_forward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(rmsnorm_forward_cuda(p)); });
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, y_value);
  result.Set(1u, rrms_value);
  return result;
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "ops.rmsNormBackward";
  TensorHandle* dy = unwrap_tensor(info, 0, op, "dy");
  TensorHandle* x = unwrap_tensor(info, 1, op, "x");
  TensorHandle* w = unwrap_tensor(info, 2, op, "w");
  TensorHandle* rrms = unwrap_tensor(info, 3, op, "rrms");
  const int64_t cols = check_x_w(x, w, op);
  check_like(dy, x, op, "dy");
  check_dtype(rrms, {DType::f32}, op, "rrms");
  check_same_device(rrms, x, op, "rrms");
  check_numel(rrms, x->numel() / cols, op, "rrms");
  const bool want_dw = bool_arg(info, 6, op, "wantDw");
  const bool accumulate = bool_arg(info, 7, op, "accumulateDw");
  TensorHandle *dx = nullptr, *dw = nullptr;
  Napi::Value dx_value = output_arg(info, 4, op, "dx", x->device(), x->dtype(), x->shape(), &dx);
  Napi::Value dw_value = info.Env().Null();
  if (want_dw) dw_value = output_arg(info, 5, op, "dw", x->device(), DType::f32, {cols}, &dw);
  if (accumulate && !unwrap_optional_tensor(info, 5, op, "dw")) throw_type(std::string(op) + ": accumulating needs a 'dw' tensor");
  RmsNormParams p;
  p.x = x->data();
  p.w = w->data();
  p.dy = dy->data();
  p.rrms_in = static_cast<const float*>(rrms->data());
  p.dx = dx->data();
  p.dw = dw ? static_cast<float*>(dw->data()) : nullptr;
  p.accumulate_dw = accumulate;
  p.rows = x->numel() / cols;
  p.cols = cols;
  p.dtype = x->dtype();
  dispatch(x->device(), op, [&] { rmsnorm_backward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(rmsnorm_backward_cuda(p)); });
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, dx_value);
  result.Set(1u, dw_value);
  return result;
}

}  // namespace

void register_rmsnorm(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsNorm", Napi::Function::New<guarded<RmsNorm>>(env, "rmsNorm"));
  exports.Set("rmsNormBackward", Napi::Function::New<guarded<RmsNormBackward>>(env, "rmsNormBackward"));
}

}  // namespace qwenlong
