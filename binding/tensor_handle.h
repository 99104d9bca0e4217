// The native half of a Tensor: storage (host or device memory), dtype, shape. JS never constructs one directly;
// the factories in tensor_handle.cc do. Every op unwraps its tensor arguments through unwrap_tensor(), which
// checks that the object really is one of ours (a Node-API type tag) and has not been disposed.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "cuda/common/device.h"
#include "cuda/common/dtype.h"

namespace qwenlong {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // Wrap new storage in a handle object.
  static Napi::Object Create(Napi::Env env, std::shared_ptr<Storage> storage, DType dtype, std::vector<int64_t> shape);
  static bool IsHandle(Napi::Env env, const Napi::Value& v);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  bool disposed() const { return !storage_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device(); }
  int64_t numel() const { return numel_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  void* data() const { return storage_->data(); }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadAsync(const Napi::CallbackInfo& info);
  Napi::Value CopyTo(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  void Release();

  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  int64_t reported_bytes_ = 0;  // external memory reported to V8
  napi_env env_ = nullptr;
};

// The handle in argument `index`, or a TypeError naming `op` and `arg`.
TensorHandle* unwrap_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);
// Like unwrap_tensor, but undefined/null gives nullptr.
TensorHandle* unwrap_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);

void register_tensor_functions(Napi::Env env, Napi::Object exports);

}  // namespace qwenlong
