#include "binding/tensor_handle.h"

#include <cmath>
#include <cstring>
#include <string>

#include "binding/guard.h"
#include "cuda/common/error.h"

namespace qwenlong {

namespace {

// Marks objects created by this addon's TensorHandle class (napi_type_tag, Node-API 8).
const napi_type_tag kTensorTag = {0x7177656e6c6f6e67ULL, 0x54656e736f720001ULL};

// State kept per JavaScript environment (the main thread and each worker thread that loads the addon): a worker's
// class constructor dies with the worker, so one process-wide reference would dangle once the worker exits.
// Node-API deletes this with its environment.
struct EnvData {
  Napi::FunctionReference constructor;
  // Tensor memory is reported to V8 so that its GC heuristics see it, in steps of at least 1 MiB: a call per small
  // tensor would cost more than the rest of its creation.
  int64_t unreported_bytes = 0;
};

EnvData* env_data(napi_env env) { return Napi::Env(env).GetInstanceData<EnvData>(); }

void report_external_memory(napi_env env, int64_t delta) {
  EnvData* d = env_data(env);
  if (d == nullptr) return;  // the environment is being torn down
  d->unreported_bytes += delta;
  if (d->unreported_bytes >= (1 << 20) || d->unreported_bytes <= -(1 << 20)) {
    int64_t total;
    napi_adjust_external_memory(env, d->unreported_bytes, &total);
    d->unreported_bytes = 0;
  }
}

struct CreateArgs {
  std::shared_ptr<Storage> storage;
  DType dtype;
  std::vector<int64_t> shape;
};

// Limits that keep sizes far from integer overflow anywhere downstream.
constexpr int kMaxDims = 8;
constexpr double kMaxElements = 1099511627776.0;  // 2^40

std::vector<int64_t> shape_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || !info[index].IsArray())
    throw_type(std::string(op) + ": argument '" + arg + "' must be an array of non-negative integers");
  Napi::Array a = info[index].As<Napi::Array>();
  uint32_t n = a.Length();
  if (n > kMaxDims) throw_range(std::string(op) + ": argument '" + arg + "' has " + std::to_string(n) + " dimensions (at most 8)");
  std::vector<int64_t> shape(n);
  double total = 1;
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw_type(std::string(op) + ": argument '" + arg + "' must contain only numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > kMaxElements)
      throw_range(std::string(op) + ": argument '" + arg + "'[" + std::to_string(i) + "] = " + std::to_string(d) +
                  " is not a valid dimension (an integer from 0 to 2^40)");
    shape[i] = static_cast<int64_t>(d);
    total *= d;
  }
  if (total > kMaxElements) throw_range(std::string(op) + ": argument '" + arg + "' has more than 2^40 elements");
  return shape;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

DType dtype_arg(const Napi::CallbackInfo& info, size_t index, const char* op) {
  std::string name = info.Length() > index && info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
  DType t;
  if (!dtype_from_name(name, &t))
    throw_type(std::string(op) + ": argument 'dtype' must be one of f32, f16, bf16, i32, i64, u8");
  return t;
}

Device device_arg(const Napi::CallbackInfo& info, size_t index, const char* op) {
  std::string name = info.Length() > index && info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") {
    require_cuda(op);
    return Device::cuda;
  }
  throw_type(std::string(op) + ": argument 'device' must be 'cpu' or 'cuda'");
}

// empty(shape, dtype, device, zero) -> handle
Napi::Value Empty(const Napi::CallbackInfo& info) {
  std::vector<int64_t> shape = shape_arg(info, 0, "Tensor.empty", "shape");
  DType dtype = dtype_arg(info, 1, "Tensor.empty");
  Device device = device_arg(info, 2, "Tensor.empty");
  bool zero = info.Length() > 3 && info[3].ToBoolean().Value();
  size_t bytes = static_cast<size_t>(numel_of(shape)) * dtype_size(dtype);
  auto storage = Storage::allocate(device, bytes);
  if (zero) zero_bytes(storage->data(), device, bytes);
  return TensorHandle::Create(info.Env(), std::move(storage), dtype, std::move(shape));
}

// The bytes a TypedArray argument views. Works for views of a SharedArrayBuffer too; a view whose ArrayBuffer has
// been detached (transferred to a worker, or by structuredClone's transfer) is refused rather than read as empty.
struct TypedBytes {
  uint8_t* data;
  size_t bytes;
};

TypedBytes typed_array_bytes(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || !info[index].IsTypedArray()) throw_type(std::string(op) + ": argument '" + arg + "' must be a TypedArray");
  napi_env env = info.Env();
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  if (napi_get_typedarray_info(env, info[index], &type, &length, &data, &buffer, &offset) != napi_ok)
    throw_type(std::string(op) + ": argument '" + arg + "' could not be read as a TypedArray");
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached)
    throw_type(std::string(op) + ": argument '" + arg + "' views a detached ArrayBuffer (transferred elsewhere; it holds no data)");
  return {static_cast<uint8_t*>(data), info[index].As<Napi::TypedArray>().ByteLength()};
}

// fromArray(typedArray, shape, dtype, device) -> handle. The array's bytes are copied as they are; any
// conversion (f32 -> bf16, ...) happened in TypeScript already.
Napi::Value FromArray(const Napi::CallbackInfo& info) {
  const char* op = "Tensor.from";
  const TypedBytes data = typed_array_bytes(info, 0, op, "data");
  std::vector<int64_t> shape = shape_arg(info, 1, op, "shape");
  DType dtype = dtype_arg(info, 2, op);
  Device device = device_arg(info, 3, op);
  size_t bytes = static_cast<size_t>(numel_of(shape)) * dtype_size(dtype);
  if (data.bytes != bytes)
    throw_range(std::string(op) + ": argument 'data' holds " + std::to_string(data.bytes) + " bytes but shape and dtype need " +
                std::to_string(bytes));
  const uint8_t* src = data.data;
  auto storage = Storage::allocate(device, bytes);
  copy_bytes(storage->data(), device, src, Device::cpu, bytes);
  return TensorHandle::Create(info.Env(), std::move(storage), dtype, std::move(shape));
}

// Checks that `array` is a TypedArray with exactly the tensor's byte size and returns its data pointer.
void* destination_bytes(const Napi::CallbackInfo& info, const TensorHandle& t, const char* op) {
  const TypedBytes out = typed_array_bytes(info, 0, op, "out");
  if (out.bytes != t.nbytes())
    throw_range(std::string(op) + ": argument 'out' holds " + std::to_string(out.bytes) + " bytes, the tensor " +
                std::to_string(t.nbytes()));
  return out.data;
}

// Reads device memory into a JS TypedArray off the main thread; keeps the storage and the array alive meanwhile.
class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, std::shared_ptr<Storage> storage, size_t bytes, Napi::TypedArray out, void* dst)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), storage_(std::move(storage)),
        bytes_(bytes), dst_(dst) {
    out_ = Napi::Persistent(static_cast<Napi::Object>(out));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      copy_bytes(dst_, Device::cpu, storage_->data(), storage_->device(), bytes_);
    } catch (const std::exception& e) {
      SetError(std::string("Tensor.toArray: ") + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(out_.Value()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Storage> storage_;
  size_t bytes_;
  void* dst_;
  Napi::ObjectReference out_;
};

}  // namespace

void TensorHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "TensorHandle",
                                   {InstanceMethod("dispose", &TensorHandle::Dispose),
                                    InstanceMethod("read", &TensorHandle::Read),
                                    InstanceMethod("readAsync", &TensorHandle::ReadAsync),
                                    InstanceMethod("copyTo", &TensorHandle::CopyTo),
                                    InstanceMethod("reshape", &TensorHandle::Reshape)});
  auto* data = new EnvData();
  data->constructor = Napi::Persistent(cls);
  env.SetInstanceData<EnvData>(data);
  exports.Set("TensorHandle", cls);
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "TensorHandle: not constructible from JS; use Tensor.from, Tensor.zeros or Tensor.empty");
  auto* args = info[0].As<Napi::External<CreateArgs>>().Data();
  storage_ = std::move(args->storage);
  dtype_ = args->dtype;
  shape_ = std::move(args->shape);
  numel_ = numel_of(shape_);
  env_ = info.Env();
  reported_bytes_ = static_cast<int64_t>(storage_->bytes());
  report_external_memory(env_, reported_bytes_);
  napi_type_tag_object(info.Env(), info.This(), &kTensorTag);
}

TensorHandle::~TensorHandle() { Release(); }

void TensorHandle::Release() {
  if (!storage_) return;
  storage_.reset();
  if (env_) report_external_memory(env_, -reported_bytes_);
  reported_bytes_ = 0;
}

Napi::Object TensorHandle::Create(Napi::Env env, std::shared_ptr<Storage> storage, DType dtype, std::vector<int64_t> shape) {
  CreateArgs args{std::move(storage), dtype, std::move(shape)};
  return env_data(env)->constructor.New({Napi::External<CreateArgs>::New(env, &args)});
}

bool TensorHandle::IsHandle(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) return false;
  bool tagged = false;
  napi_status s = napi_check_object_type_tag(env, v, &kTensorTag, &tagged);
  return s == napi_ok && tagged;
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

Napi::Value TensorHandle::Read(const Napi::CallbackInfo& info) {
  try {
    if (disposed()) throw_type("Tensor.toArray: the tensor has been disposed");
    void* dst = destination_bytes(info, *this, "Tensor.toArray");
    copy_bytes(dst, Device::cpu, storage_->data(), storage_->device(), nbytes());
    return info[0];
  } catch (...) {
    rethrow_as_js(info.Env());
  }
}

Napi::Value TensorHandle::ReadAsync(const Napi::CallbackInfo& info) {
  try {
    if (disposed()) throw_type("Tensor.toArray: the tensor has been disposed");
    void* dst = destination_bytes(info, *this, "Tensor.toArray");
    auto* worker = new ReadWorker(info.Env(), storage_, nbytes(), info[0].As<Napi::TypedArray>(), dst);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  } catch (...) {
    rethrow_as_js(info.Env());
  }
}

Napi::Value TensorHandle::CopyTo(const Napi::CallbackInfo& info) {
  try {
    if (disposed()) throw_type("Tensor.to: the tensor has been disposed");
    Device device = device_arg(info, 0, "Tensor.to");
    auto storage = Storage::allocate(device, nbytes());
    copy_bytes(storage->data(), device, storage_->data(), storage_->device(), nbytes());
    return Create(info.Env(), std::move(storage), dtype_, shape_);
  } catch (...) {
    rethrow_as_js(info.Env());
  }
}

// reshape(shape) -> a new handle over the same storage (a view: writes through either show in both).
Napi::Value TensorHandle::Reshape(const Napi::CallbackInfo& info) {
  try {
    if (disposed()) throw_type("Tensor.reshape: the tensor has been disposed");
    std::vector<int64_t> shape = shape_arg(info, 0, "Tensor.reshape", "shape");
    if (numel_of(shape) != numel_)
      throw_range("Tensor.reshape: a shape of " + std::to_string(numel_of(shape)) + " elements for a tensor of " + std::to_string(numel_));
    return Create(info.Env(), storage_, dtype_, std::move(shape));
  } catch (...) {
    rethrow_as_js(info.Env());
  }
}

TensorHandle* unwrap_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return nullptr;
  return unwrap_tensor(info, index, op, arg);
}

TensorHandle* unwrap_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || !TensorHandle::IsHandle(info.Env(), info[index]))
    throw_type(std::string(op) + ": argument '" + arg + "' must be a Tensor");
  TensorHandle* t = TensorHandle::Unwrap(info[index].As<Napi::Object>());
  if (!t || t->disposed()) throw_type(std::string(op) + ": argument '" + arg + "' has been disposed");
  return t;
}

double number_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || !info[index].IsNumber()) throw_type(std::string(op) + ": argument '" + arg + "' must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

float finite_float_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  double d = number_arg(info, index, op, arg);
  if (!std::isfinite(d) || std::fabs(d) > 3.4e38) throw_range(std::string(op) + ": argument '" + arg + "' must be a finite number");
  return static_cast<float>(d);
}

std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || !info[index].IsString()) throw_type(std::string(op) + ": argument '" + arg + "' must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

void register_tensor_functions(Napi::Env env, Napi::Object exports) {
  TensorHandle::Init(env, exports);
  exports.Set("empty", Napi::Function::New<guarded<Empty>>(env, "empty"));
  exports.Set("fromArray", Napi::Function::New<guarded<FromArray>>(env, "fromArray"));
}

}  // namespace qwenlong
