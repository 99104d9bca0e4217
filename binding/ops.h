// Registration of every op's glue, and the device dispatch they share.
#pragma once
#include <napi.h>

#include "cuda/common/device.h"
#include "cuda/common/error.h"
#include "cuda/common/profiler.h"

namespace qwenlong {

// Inside a dispatch's CUDA branch: the call, or nothing when the binary has no CUDA (dispatch() has thrown already).
#ifdef QWENLONG_HAVE_CUDA
#define QWENLONG_CUDA_CALL(call) call
#else
#define QWENLONG_CUDA_CALL(call) (void)0
#endif

// Runs the CPU or the CUDA implementation for `device`; CUDA work is queued on the compute stream. While the op
// profiler runs, the call is timed under `op`.
template <typename Cpu, typename Cuda>
void dispatch(Device device, const char* op, Cpu&& cpu, Cuda&& cuda) {
  ProfileScope scope(op, device);
  if (device == Device::cpu) {
    cpu();
    return;
  }
  require_cuda(op);
  cuda();
}

void register_runtime(Napi::Env env, Napi::Object exports);
void register_add(Napi::Env env, Napi::Object exports);
void register_cast(Napi::Env env, Napi::Object exports);
void register_sample(Napi::Env env, Napi::Object exports);
void register_rmsnorm(Napi::Env env, Napi::Object exports);
void register_swiglu(Napi::Env env, Napi::Object exports);
void register_rope(Napi::Env env, Napi::Object exports);
void register_embedding(Napi::Env env, Napi::Object exports);
void register_adamw(Napi::Env env, Napi::Object exports);
void register_policy_loss(Napi::Env env, Napi::Object exports);
void register_matmul(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);
void register_kv_cache(Napi::Env env, Napi::Object exports);

}  // namespace qwenlong
