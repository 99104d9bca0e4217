// N-API glue for rope.
//   rope(x, positions | null, offset, theta, rotaryDim, interleaved, inverse, out | null) -> out
#include "cuda/rope/rope.h"

#include <cmath>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

Napi::Value Rope(const Napi::CallbackInfo& info) {
  const bool inverse = info.Length() > 6 && info[6].IsBoolean() && info[6].As<Napi::Boolean>().Value();
  const char* op = inverse ? "ops.ropeBackward" : "ops.rope";
  TensorHandle* x = unwrap_tensor(info, 0, op, "x");
  check_dtype(x, {DType::f32, DType::f16, DType::bf16}, op, "x");
  if (x->shape().size() != 3) throw_range(std::string(op) + ": argument 'x' must have shape (tokens, heads, headDim)");
  const int64_t tokens = x->shape()[0], heads = x->shape()[1], head_dim = x->shape()[2];
  TensorHandle* positions = unwrap_optional_tensor(info, 1, op, "positions");
  if (positions) {
    check_dtype(positions, {DType::i32}, op, "positions");
    check_same_device(positions, x, op, "positions");
    check_numel(positions, tokens, op, "positions");
  }
  const double offset = number_arg(info, 2, op, "offset");
  if (!(offset >= 0 && offset <= 9007199254740991.0) || offset != std::floor(offset))
    throw_range(std::string(op) + ": argument 'offset' must be a non-negative integer");
  const double theta = number_arg(info, 3, op, "theta");
  if (!(theta > 1 && std::isfinite(theta))) throw_range(std::string(op) + ": argument 'theta' must be a finite number > 1");
  const double rotary = number_arg(info, 4, op, "rotaryDim");
  if (!(rotary >= 2 && rotary <= static_cast<double>(head_dim)) || rotary != std::floor(rotary) || static_cast<int64_t>(rotary) % 2 != 0)
    throw_range(std::string(op) + ": argument 'rotaryDim' must be an even integer from 2 to headDim (" + std::to_string(head_dim) + ")");
  const bool interleaved = bool_arg(info, 5, op, "interleaved");
  TensorHandle* out = nullptr;
  Napi::Value result = output_arg(info, 7, op, "out", x->device(), x->dtype(), x->shape(), &out);
  RopeParams p;
  p.x = x->data();
  p.out = out->data();
  p.positions = positions ? static_cast<const int32_t*>(positions->data()) : nullptr;
  p.offset = static_cast<int64_t>(offset);
  p.tokens = tokens;
  p.heads = heads;
  p.head_dim = head_dim;
  p.rotary_dim = static_cast<int64_t>(rotary);
  p.theta = theta;
  p.interleaved = interleaved;
  p.inverse = inverse;
  p.dtype = x->dtype();
  dispatch(x->device(), op, [&] { rope_cpu(p); }, [&] { QWENLONG_CUDA_CALL(rope_cuda(p)); });
  return result;
}

}  // namespace

void register_rope(Napi::Env env, Napi::Object exports) { exports.Set("rope", Napi::Function::New<guarded<Rope>>(env, "rope")); }

}  // namespace qwenlong
