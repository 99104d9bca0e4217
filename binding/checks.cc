#include "binding/checks.h"

#include "binding/guard.h"
#include "cuda/common/error.h"

namespace qwenlong {

void check_same_dtype(const TensorHandle* t, const TensorHandle* ref, const char* op, const char* arg) {
  if (t->dtype() != ref->dtype())
    throw_type(std::string(op) + ": argument '" + arg + "' has dtype " + dtype_name(t->dtype()) + ", expected " + dtype_name(ref->dtype()));
}

void check_same_device(const TensorHandle* t, const TensorHandle* ref, const char* op, const char* arg) {
  if (t->device() != ref->device())
    throw_type(std::string(op) + ": argument '" + arg + "' is on " + device_name(t->device()) + ", expected " + device_name(ref->device()));
}

void check_numel(const TensorHandle* t, int64_t n, const char* op, const char* arg) {
  if (t->numel() != n)
    throw_range(std::string(op) + ": argument '" + arg + "' has " + std::to_string(t->numel()) + " elements, expected " + std::to_string(n));
}

void check_like(const TensorHandle* t, const TensorHandle* ref, const char* op, const char* arg) {
  check_same_dtype(t, ref, op, arg);
  check_same_device(t, ref, op, arg);
  check_numel(t, ref->numel(), op, arg);
}

void check_dtype(const TensorHandle* t, std::initializer_list<DType> allowed, const char* op, const char* arg) {
  std::string names;
  for (DType d : allowed) {
    if (d == t->dtype()) return;
    names += (names.empty() ? "" : ", ") + std::string(dtype_name(d));
  }
  throw_type(std::string(op) + ": argument '" + arg + "' has dtype " + dtype_name(t->dtype()) + "; expected " + names);
}

int64_t last_dim(const TensorHandle* t, const char* op, const char* arg) {
  if (t->shape().empty()) throw_range(std::string(op) + ": argument '" + arg + "' must have at least one dimension");
  return t->shape().back();
}

Napi::Value new_tensor(Napi::Env env, Device device, DType dtype, const std::vector<int64_t>& shape, TensorHandle** handle) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return TensorHandle::Create(env, Storage::allocate(device, static_cast<size_t>(n) * dtype_size(dtype)), dtype, shape, handle);
}

Napi::Value output_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg, Device device, DType dtype,
                       const std::vector<int64_t>& shape, TensorHandle** handle) {
  TensorHandle* out = unwrap_optional_tensor(info, index, op, arg);
  if (!out) return new_tensor(info.Env(), device, dtype, shape, handle);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (out->dtype() != dtype)
    throw_type(std::string(op) + ": argument '" + arg + "' has dtype " + dtype_name(out->dtype()) + ", expected " + dtype_name(dtype));
  if (out->device() != device)
    throw_type(std::string(op) + ": argument '" + arg + "' is on " + device_name(out->device()) + ", expected " + device_name(device));
  check_numel(out, n, op, arg);
  *handle = out;
  return info[index];
}

bool bool_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || !info[index].IsBoolean()) throw_type(std::string(op) + ": argument '" + arg + "' must be a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

}  // namespace qwenlong
