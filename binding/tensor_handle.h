// The native half of a Tensor: storage (host or device memory), dtype, shape. JavaScript holds it as a number, an id
// into its environment's table of live tensors (slot and generation), not as a wrapped object: a wrapped object
// costs Node-API a weak reference and a queued finalizer each, several microseconds per tensor, where a decode step
// of a small model creates a hundred tensors. The TypeScript Tensor frees its id on dispose() and, for a tensor
// collected without one, through a FinalizationRegistry. Every op looks its tensor arguments up through
// unwrap_tensor(), which refuses anything that is not a live id of this environment.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "cuda/common/device.h"
#include "cuda/common/dtype.h"

namespace qwenlong {

class TensorHandle {
 public:
  // A new live tensor over `storage`: its id (a JS number), and the handle through `handle` when asked.
  static Napi::Value Create(Napi::Env env, std::shared_ptr<Storage> storage, DType dtype, std::vector<int64_t> shape,
                            TensorHandle** handle = nullptr);
  // True for a value shaped like a tensor id (live or not); Unwrap tells which.
  static bool IsHandle(Napi::Env env, const Napi::Value& v);
  // The live tensor with this id, or nullptr (not an id of this environment's tensors, or disposed).
  static TensorHandle* Unwrap(Napi::Env env, const Napi::Value& v);

  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device(); }
  int64_t numel() const { return numel_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  void* data() const { return storage_->data(); }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

 private:
  friend struct TensorTable;
  // Drops the storage (the memory goes when no other view holds it); TensorTable::remove frees the slot with it.
  void Release();

  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  napi_env env_ = nullptr;
};

// The handle in argument `index`, or a TypeError naming `op` and `arg`.
TensorHandle* unwrap_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);
// The same for a value read elsewhere (an array's item); `arg` names it in the error.
TensorHandle* unwrap_tensor_value(Napi::Env env, const Napi::Value& v, const char* op, const char* arg);
// Like unwrap_tensor, but undefined/null gives nullptr.
TensorHandle* unwrap_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);

// Tensors created during a native call are kept only if the call returns (guarded() in guard.h): an op that throws
// after making its outputs frees them. created_mark() is where the call's own creations begin (calls nest when a
// getter runs JavaScript that calls the addon); settle_created() keeps or frees those from `mark` on.
size_t created_mark(napi_env env);
void settle_created(napi_env env, size_t mark, bool keep);

void register_tensor_functions(Napi::Env env, Napi::Object exports);

}  // namespace qwenlong
