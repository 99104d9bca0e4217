// Runtime functions: device and CPU facts, thread and ISA control, memory statistics, synchronization, the op
// profiler, and the two measuring sticks the benchmarks need (an empty call, a plain memcpy).
#include <cstring>
#include <string>

#include "binding/guard.h"
#include "binding/ops.h"
#include "binding/tensor_handle.h"
#include "cuda/common/cpu_features.h"
#include "cuda/common/profiler.h"
#include "cuda/common/thread_pool.h"

namespace qwenlong {

namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaStatus& st = cuda_status();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", st.compiled);
  cuda.Set("archs", st.archs);
  cuda.Set("available", st.available);
  cuda.Set("reason", st.reason);
  cuda.Set("runtimeVersion", st.runtime_version);
  cuda.Set("driverVersion", st.driver_version);
  Napi::Array devices = Napi::Array::New(env, st.devices.size());
  for (size_t i = 0; i < st.devices.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", st.devices[i].name);
    d.Set("memoryBytes", static_cast<double>(st.devices[i].memory_bytes));
    d.Set("smCount", st.devices[i].sm_count);
    d.Set("computeCapability", std::to_string(st.devices[i].major) + "." + std::to_string(st.devices[i].minor));
    devices.Set(static_cast<uint32_t>(i), d);
  }
  cuda.Set("devices", devices);

  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("isa", isa_name(current_isa()));
  std::vector<Isa> isas = supported_isas();
  Napi::Array supported = Napi::Array::New(env, isas.size());
  for (size_t i = 0; i < isas.size(); ++i) supported.Set(static_cast<uint32_t>(i), isa_name(isas[i]));
  cpu.Set("supportedIsas", supported);
  cpu.Set("bf16Dot", cpu_has_avx512bf16());
  cpu.Set("threads", ThreadPool::instance().size());

  Napi::Object out = Napi::Object::New(env);
  out.Set("cuda", cuda);
  out.Set("cpu", cpu);
  return out;
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  set_isa(string_arg(info, 0, "setIsa", "isa"));
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  double n = number_arg(info, 0, "setThreads", "threads");
  if (!(n >= 1 && n <= 1024) || n != static_cast<int>(n)) throw_range("setThreads: argument 'threads' must be an integer from 1 to 1024");
  ThreadPool::instance().resize(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value MemoryStatsFn(const Napi::CallbackInfo& info) {
  std::string name = string_arg(info, 0, "memoryStats", "device");
  if (name != "cpu" && name != "cuda") throw_type("memoryStats: argument 'device' must be 'cpu' or 'cuda'");
  MemoryStats s = memory_stats(name == "cpu" ? Device::cpu : Device::cuda);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("inUse", static_cast<double>(s.in_use));
  o.Set("cached", static_cast<double>(s.cached));
  o.Set("peak", static_cast<double>(s.peak));
  return o;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  if (cuda_status().available) cuda_synchronize("synchronize");
  return info.Env().Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  host_empty_cache();
  cuda_empty_cache();
  return info.Env().Undefined();
}

// profilerStart(): clears and starts the op profiler. profilerStop() -> [{ op, device, calls, hostMs, deviceMs }].
Napi::Value ProfilerStart(const Napi::CallbackInfo& info) {
  profiler_start();
  return info.Env().Undefined();
}

Napi::Value ProfilerStop(const Napi::CallbackInfo& info) {
  std::vector<OpProfile> rows = profiler_stop();
  Napi::Array out = Napi::Array::New(info.Env(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("op", rows[i].op);
    o.Set("device", device_name(rows[i].device));
    o.Set("calls", static_cast<double>(rows[i].calls));
    o.Set("hostMs", rows[i].host_ms);
    o.Set("deviceMs", rows[i].device_ms);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// The cheapest possible call: measures the N-API crossing alone.
Napi::Value Noop(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// memcpy(dst, src): one plain std::memcpy of src's bytes on the calling thread (host tensors), the reference the
// memory-bound ops are measured against.
Napi::Value Memcpy(const Napi::CallbackInfo& info) {
  TensorHandle* dst = unwrap_tensor(info, 0, "memcpy", "dst");
  TensorHandle* src = unwrap_tensor(info, 1, "memcpy", "src");
  if (dst->device() != Device::cpu || src->device() != Device::cpu) throw_type("memcpy: both tensors must be on the cpu");
  if (dst->nbytes() != src->nbytes()) throw_range("memcpy: 'dst' and 'src' differ in size");
  if (src->nbytes()) std::memcpy(dst->data(), src->data(), src->nbytes());
  return info.Env().Undefined();
}

}  // namespace

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New<guarded<Info>>(env, "info"));
  exports.Set("setIsa", Napi::Function::New<guarded<SetIsa>>(env, "setIsa"));
  exports.Set("setThreads", Napi::Function::New<guarded<SetThreads>>(env, "setThreads"));
  exports.Set("memoryStats", Napi::Function::New<guarded<MemoryStatsFn>>(env, "memoryStats"));
  exports.Set("synchronize", Napi::Function::New<guarded<Synchronize>>(env, "synchronize"));
  exports.Set("profilerStart", Napi::Function::New<guarded<ProfilerStart>>(env, "profilerStart"));
  exports.Set("profilerStop", Napi::Function::New<guarded<ProfilerStop>>(env, "profilerStop"));
  exports.Set("emptyCache", Napi::Function::New<guarded<EmptyCache>>(env, "emptyCache"));
  exports.Set("noop", Napi::Function::New(env, Noop, "noop"));
  exports.Set("memcpy", Napi::Function::New<guarded<Memcpy>>(env, "memcpy"));
}

}  // namespace qwenlong
