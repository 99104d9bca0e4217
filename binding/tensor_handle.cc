#include "binding/tensor_handle.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <string>

#include "binding/guard.h"
#include "cuda/common/error.h"

namespace qwenlong {

namespace {

// Ids: generation * 2^24 + slot, a JS number (exact below 2^53). A slot's generation moves on when its tensor is
// disposed, so an id kept past dispose() (or a leaked tensor's id reaching the FinalizationRegistry after an explicit
// dispose) never reaches the slot's next tensor. Generations start at a per-environment offset, so ids of two
// environments (or two copies of the addon) rarely coincide; Tensor's own brand check keeps those apart anyway.
constexpr uint64_t kSlotBits = 24;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
constexpr uint64_t kGenerations = uint64_t{1} << 29;  // ids stay below 2^53

// A number of an id's form (live or not).
bool id_shaped(double id) { return id >= double(uint64_t{1} << kSlotBits) && id < double(kGenerations << kSlotBits) && id == std::floor(id); }

}  // namespace

// The live tensors of one JavaScript environment. Handles live in stable heap cells, reused with their shape's
// capacity: creating a tensor allocates only its storage.
struct TensorTable {
  std::vector<std::unique_ptr<TensorHandle>> handles;
  std::vector<uint32_t> generations;
  std::vector<uint32_t> free_slots;
  uint32_t salt = 0;

  // The ids created by the native calls in progress (see created_mark).
  std::vector<double> created;

  double insert(TensorHandle** out) {
    created.reserve(created.size() + 1);  // the bookkeeping below cannot throw half-way
    uint32_t slot;
    if (!free_slots.empty()) {
      slot = free_slots.back();
      free_slots.pop_back();
    } else {
      if (handles.size() > kSlotMask) throw_range("qwenlong: more than 16,777,215 live tensors (dispose the ones you no longer use)");
      auto handle = std::make_unique<TensorHandle>();
      handles.reserve(handles.size() + 1);
      generations.reserve(generations.size() + 1);
      slot = static_cast<uint32_t>(handles.size());
      handles.push_back(std::move(handle));
      generations.push_back(1 + static_cast<uint32_t>((salt ^ (slot * 2654435761u)) % (kGenerations / 2)));
    }
    *out = handles[slot].get();
    const double id = static_cast<double>((static_cast<uint64_t>(generations[slot]) << kSlotBits) | slot);
    created.push_back(id);
    return id;
  }

  // The live handle with this id, or nullptr. A slot's generation moves on when it is freed, so a matching
  // generation means a live tensor.
  TensorHandle* find(double id, uint32_t* slot_out = nullptr) const {
    if (!id_shaped(id)) return nullptr;
    const uint64_t u = static_cast<uint64_t>(id);
    const uint64_t slot = u & kSlotMask;
    if (slot >= handles.size() || generations[slot] != (u >> kSlotBits)) return nullptr;
    if (slot_out) *slot_out = static_cast<uint32_t>(slot);
    return handles[slot].get();
  }

  void remove(double id) {
    uint32_t slot;
    TensorHandle* t = find(id, &slot);
    if (!t) return;
    t->Release();
    t->shape_.clear();
    generations[slot] = generations[slot] + 1 < kGenerations ? generations[slot] + 1 : 1;
    free_slots.push_back(slot);
  }
};

namespace {

// State kept per JavaScript environment (the main thread and each worker thread that loads the addon). Node-API
// deletes it with its environment, and with it every tensor still live there.
struct EnvData {
  TensorTable tensors;  // destroyed with the environment: the handles go without calling back into Node-API
  // Tensor memory as V8's garbage collector sees it (external memory), so that tensors JavaScript drops without
  // dispose() are collected before their memory piles up. V8 starts a full collection whenever that figure grows
  // 64 MiB past its level at the last one. Telling it of every tensor as it came and went made every training step,
  // whose activations rise by more than that and are disposed again, set off collections that could free nothing
  // (1,102 in `npm start`: ~11 % of the main thread, and the marking threads took CPU from the kernels). V8 is told
  // instead, at the end of each window of creations (window_bytes()), the highest of the last kWindows windows'
  // least live bytes: memory created and disposed within a window never counts; a level that live memory keeps for
  // a whole window (a KV cache through a generation, weights, tensors leaked to the collector) counts at the window's
  // end, and is forgotten kWindows windows after it was last held. A steady loop's figure settles after its first
  // rounds; a leak raises it a window at a time. The price: after a high level is disposed, forgotten tensors can
  // grow back to it (within the memory the program just held, which the caching allocators keep anyway) before the
  // collector hears of them, until the window that held it ages out or collected frees clear the history.
  static constexpr int kWindows = 32;
  static constexpr int64_t kMinWindowBytes = int64_t{64} << 20;
  // A window: 64 MiB of creations, or a quarter of the level V8 was last told if more, so that the history spans a
  // step of a large model too (a step creates several times the memory it keeps).
  int64_t window_bytes() const { return std::max(kMinWindowBytes, reported / 4); }
  int64_t live_bytes = 0;             // bytes of this environment's live tensors (each storage once)
  int64_t window_low[kWindows] = {};  // the least live_bytes in each of the last windows (current: window % kWindows)
  int64_t window = 0;                 // windows begun so far
  int64_t window_created = 0;         // bytes created since the current window began
  int64_t reported = 0;               // what V8 has been told
  int64_t collected_bytes = 0;        // bytes of forgotten tensors freed since the history was last cleared
};

EnvData* env_data(napi_env env) { return Napi::Env(env).GetInstanceData<EnvData>(); }

// V8's figure becomes `level`.
void tell_v8(napi_env env, EnvData* d, int64_t level) {
  if (level == d->reported) return;
  int64_t total;
  napi_adjust_external_memory(env, level - d->reported, &total);
  d->reported = level;
}

void report_external_memory(napi_env env, int64_t delta) {
  EnvData* d = env_data(env);
  if (d == nullptr || delta == 0) return;  // nothing, or the environment is being torn down
  d->live_bytes += delta;
  int64_t& low = d->window_low[d->window % EnvData::kWindows];
  if (delta < 0) {
    low = std::min(low, d->live_bytes);
    return;
  }
  d->window_created += delta;
  if (d->window_created < d->window_bytes()) return;
  tell_v8(env, d, *std::max_element(std::begin(d->window_low), std::end(d->window_low)));
  d->window++;
  d->window_low[d->window % EnvData::kWindows] = d->live_bytes;
  d->window_created = 0;
}

// The collector freed a forgotten tensor of `bytes`. Once such frees add up to a window, the levels the windows
// remember from before them are history (kept, they would let the next leak grow past the old peak before V8 hears
// of it), and V8 hears of the drop at once. A program that forgets a small tensor now and then keeps its history.
void external_memory_collected(napi_env env, int64_t bytes) {
  EnvData* d = env_data(env);
  if (d == nullptr) return;
  d->collected_bytes += bytes;
  if (d->collected_bytes < d->window_bytes()) return;
  d->collected_bytes = 0;
  std::fill(std::begin(d->window_low), std::end(d->window_low), d->live_bytes);
  if (d->live_bytes < d->reported) tell_v8(env, d, d->live_bytes);
}

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
  const TypedBytes out = typed_array_bytes(info, 1, op, "out");
  if (out.bytes != t.nbytes())
    throw_range(std::string(op) + ": argument 'out' holds " + std::to_string(out.bytes) + " bytes, the tensor " +
                std::to_string(t.nbytes()));
  return out.data;
}

// Reads device memory into a JS TypedArray off the main thread; keeps the storage and the array alive meanwhile.
// The copy lands in a buffer of the worker's own and reaches the array on the main thread: JavaScript may transfer
// (detach) the array's buffer while the worker runs, and a copy straight into it would then write freed memory.
class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, std::shared_ptr<Storage> storage, size_t bytes, Napi::TypedArray out)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), storage_(std::move(storage)), bytes_(bytes) {
    out_ = Napi::Persistent(static_cast<Napi::Object>(out));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      staging_.resize(bytes_);
      copy_bytes(staging_.data(), Device::cpu, storage_->data(), storage_->device(), bytes_);
    } catch (const std::exception& e) {
      SetError(std::string("Tensor.toArray: ") + e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value buffer = nullptr;
    bool detached = false;
    if (napi_get_typedarray_info(env, out_.Value(), &type, &length, &data, &buffer, &offset) != napi_ok ||
        (napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached) ||
        out_.Value().As<Napi::TypedArray>().ByteLength() != bytes_) {
      deferred_.Reject(Napi::TypeError::New(env, "Tensor.toArray: the destination array's buffer was transferred (detached) while the tensor was being read").Value());
      return;
    }
    if (bytes_ > 0) std::memcpy(data, staging_.data(), bytes_);
    deferred_.Resolve(out_.Value());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Storage> storage_;
  size_t bytes_;
  std::vector<uint8_t> staging_;
  Napi::ObjectReference out_;
};

// tensorDispose(id, collected?): frees a live tensor; anything else (disposed already, never an id) is left alone.
// collected: the collector found the tensor unreachable (the finalization registry's call).
Napi::Value Dispose(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    if (EnvData* d = env_data(info.Env())) {
      const bool collected = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
      const int64_t live = d->live_bytes;
      d->tensors.remove(info[0].As<Napi::Number>().DoubleValue());
      if (collected) external_memory_collected(info.Env(), live - d->live_bytes);
    }
  }
  return info.Env().Undefined();
}

// tensorRead(id, out): copies the tensor into the TypedArray `out` (same byte size) and returns it.
Napi::Value Read(const Napi::CallbackInfo& info) {
  TensorHandle* t = unwrap_tensor(info, 0, "Tensor.toArray", "tensor");
  void* dst = destination_bytes(info, *t, "Tensor.toArray");
  copy_bytes(dst, Device::cpu, t->data(), t->device(), t->nbytes());
  return info[1];
}

// tensorReadAsync(id, out): the same off the main thread; a promise of `out`.
Napi::Value ReadAsync(const Napi::CallbackInfo& info) {
  TensorHandle* t = unwrap_tensor(info, 0, "Tensor.toArray", "tensor");
  destination_bytes(info, *t, "Tensor.toArray");  // checked now; written when the copy is back
  auto* worker = new ReadWorker(info.Env(), t->storage(), t->nbytes(), info[1].As<Napi::TypedArray>());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// tensorCopyTo(id, device) -> a new tensor's id.
Napi::Value CopyTo(const Napi::CallbackInfo& info) {
  TensorHandle* t = unwrap_tensor(info, 0, "Tensor.to", "tensor");
  Device device = device_arg(info, 1, "Tensor.to");
  auto storage = Storage::allocate(device, t->nbytes());
  copy_bytes(storage->data(), device, t->data(), t->device(), t->nbytes());
  return TensorHandle::Create(info.Env(), std::move(storage), t->dtype(), t->shape());
}

// tensorReshape(id, shape) -> a new id over the same storage (a view: writes through either show in both).
Napi::Value Reshape(const Napi::CallbackInfo& info) {
  // The shape first: reading it can run JavaScript (a getter), which could dispose the tensor.
  std::vector<int64_t> shape = shape_arg(info, 1, "Tensor.reshape", "shape");
  TensorHandle* t = unwrap_tensor(info, 0, "Tensor.reshape", "tensor");
  if (numel_of(shape) != t->numel())
    throw_range("Tensor.reshape: a shape of " + std::to_string(numel_of(shape)) + " elements for a tensor of " + std::to_string(t->numel()));
  return TensorHandle::Create(info.Env(), t->storage(), t->dtype(), std::move(shape));
}

// liveTensors() -> the number of live tensor ids in this environment (tests: nothing leaks a slot).
Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  EnvData* d = env_data(info.Env());
  const double live = d ? static_cast<double>(d->tensors.handles.size() - d->tensors.free_slots.size()) : 0;
  return Napi::Number::New(info.Env(), live);
}

}  // namespace

void TensorHandle::Release() {
  if (!storage_) return;
  // The memory stops counting with the last tensor over it (a view may outlive the tensor it was made from).
  if (storage_->drop_holder() == 0 && env_) report_external_memory(env_, -static_cast<int64_t>(storage_->bytes()));
  storage_.reset();
}

Napi::Value TensorHandle::Create(Napi::Env env, std::shared_ptr<Storage> storage, DType dtype, std::vector<int64_t> shape,
                                 TensorHandle** handle) {
  EnvData* d = env_data(env);
  if (d == nullptr) throw_type("qwenlong: the addon is not initialized in this environment");
  TensorHandle* t = nullptr;
  const double id = d->tensors.insert(&t);
  t->storage_ = std::move(storage);
  t->dtype_ = dtype;
  t->shape_ = std::move(shape);
  t->numel_ = numel_of(t->shape_);
  t->env_ = env;
  // Memory counts once per storage, from its first tensor to its last (reshape views share it).
  if (t->storage_->add_holder() == 1) report_external_memory(env, static_cast<int64_t>(t->storage_->bytes()));
  if (handle) *handle = t;
  return Napi::Number::New(env, id);
}

bool TensorHandle::IsHandle(Napi::Env, const Napi::Value& v) { return v.IsNumber() && id_shaped(v.As<Napi::Number>().DoubleValue()); }

TensorHandle* TensorHandle::Unwrap(Napi::Env env, const Napi::Value& v) {
  if (!v.IsNumber()) return nullptr;
  EnvData* d = env_data(env);
  return d ? d->tensors.find(v.As<Napi::Number>().DoubleValue()) : nullptr;
}

TensorHandle* unwrap_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return nullptr;
  return unwrap_tensor(info, index, op, arg);
}

TensorHandle* unwrap_tensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  return unwrap_tensor_value(info.Env(), info[index], op, arg);  // past the last argument: undefined
}

TensorHandle* unwrap_tensor_value(Napi::Env env, const Napi::Value& v, const char* op, const char* arg) {
  if (!TensorHandle::IsHandle(env, v)) throw_type(std::string(op) + ": argument '" + arg + "' must be a Tensor");
  TensorHandle* t = TensorHandle::Unwrap(env, v);
  if (!t) throw_type(std::string(op) + ": argument '" + arg + "' has been disposed (or is not a tensor of this thread)");
  return t;
}

size_t created_mark(napi_env env) {
  EnvData* d = env_data(env);
  return d ? d->tensors.created.size() : 0;
}

void settle_created(napi_env env, size_t mark, bool keep) {
  EnvData* d = env_data(env);
  if (d == nullptr) return;
  std::vector<double>& created = d->tensors.created;
  if (!keep)
    for (size_t i = mark; i < created.size(); ++i) d->tensors.remove(created[i]);
  if (created.size() > mark) created.resize(mark);
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
  env.SetInstanceData<EnvData>(new EnvData());
  env_data(env)->tensors.salt = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(env_data(env)) >> 4) * 2246822519u;
  exports.Set("tensorDispose", Napi::Function::New<guarded<Dispose>>(env, "tensorDispose"));
  exports.Set("tensorRead", Napi::Function::New<guarded<Read>>(env, "tensorRead"));
  exports.Set("tensorReadAsync", Napi::Function::New<guarded<ReadAsync>>(env, "tensorReadAsync"));
  exports.Set("tensorCopyTo", Napi::Function::New<guarded<CopyTo>>(env, "tensorCopyTo"));
  exports.Set("tensorReshape", Napi::Function::New<guarded<Reshape>>(env, "tensorReshape"));
  exports.Set("liveTensors", Napi::Function::New<guarded<LiveTensors>>(env, "liveTensors"));
  exports.Set("empty", Napi::Function::New<guarded<Empty>>(env, "empty"));
  exports.Set("fromArray", Napi::Function::New<guarded<FromArray>>(env, "fromArray"));
}

}  // namespace qwenlong
