// Every exported function runs inside guarded(): native errors become the matching JS error class, and no C++
// exception ever reaches Node-API (which would abort the process).
#pragma once
#include <napi.h>

#include <new>
#include <string>

#include "binding/tensor_handle.h"
#include "cuda/common/error.h"

namespace qwenlong {

// Call inside `catch (...)`: rethrows the current exception as the matching Napi error.
[[noreturn]] inline void rethrow_as_js(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;  // already a JS error; node-addon-api hands it to JS
  } catch (const Error& e) {
    if (e.kind == ErrorKind::Type) throw Napi::TypeError::New(env, e.what());
    if (e.kind == ErrorKind::Range) throw Napi::RangeError::New(env, e.what());
    throw Napi::Error::New(env, e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "qwenlong: out of host memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("qwenlong: ") + e.what());
  } catch (...) {
    throw Napi::Error::New(env, "qwenlong: unknown native error");
  }
}

// A call that throws frees the tensors it created (their ids never reached JavaScript, so nothing else could).
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  const size_t mark = created_mark(info.Env());
  try {
    Napi::Value result = F(info);
    settle_created(info.Env(), mark, true);
    return result;
  } catch (...) {
    settle_created(info.Env(), mark, false);
    rethrow_as_js(info.Env());
  }
}

// Small argument readers; each names the op and the argument in its error.
double number_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);
// A finite float (NaN and infinities rejected).
float finite_float_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);
std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);

}  // namespace qwenlong
