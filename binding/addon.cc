// The addon's entry point: registers the tensor factories, the runtime functions and every op.
#include <napi.h>

#include "binding/ops.h"
#include "binding/tensor_handle.h"

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  qwenlong::register_tensor_functions(env, exports);
  qwenlong::register_runtime(env, exports);
  qwenlong::register_add(env, exports);
  qwenlong::register_cast(env, exports);
  qwenlong::register_sample(env, exports);
  qwenlong::register_rmsnorm(env, exports);
  qwenlong::register_swiglu(env, exports);
  qwenlong::register_rope(env, exports);
  qwenlong::register_embedding(env, exports);
  qwenlong::register_adamw(env, exports);
  qwenlong::register_policy_loss(env, exports);
  qwenlong::register_matmul(env, exports);
  qwenlong::register_attention(env, exports);
  qwenlong::register_kv_cache(env, exports);
  return exports;
}

NODE_API_MODULE(qwenlong_native, InitAddon)
