// Argument checks shared by the op glue. Every error names the op and the argument.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "binding/tensor_handle.h"

namespace qwenlong {

// t has ref's dtype, device and element count.
void check_like(const TensorHandle* t, const TensorHandle* ref, const char* op, const char* arg);
void check_dtype(const TensorHandle* t, std::initializer_list<DType> allowed, const char* op, const char* arg);
void check_same_dtype(const TensorHandle* t, const TensorHandle* ref, const char* op, const char* arg);
void check_same_device(const TensorHandle* t, const TensorHandle* ref, const char* op, const char* arg);
void check_numel(const TensorHandle* t, int64_t n, const char* op, const char* arg);
// The last dimension of t (t must have at least one dimension).
int64_t last_dim(const TensorHandle* t, const char* op, const char* arg);

// A new tensor (as a JS value) and its handle.
Napi::Value new_tensor(Napi::Env env, Device device, DType dtype, const std::vector<int64_t>& shape, TensorHandle** handle);
// The optional output in argument `index`, checked against (dtype, device, numel), or a new one of `shape`.
Napi::Value output_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg, Device device, DType dtype,
                       const std::vector<int64_t>& shape, TensorHandle** handle);
bool bool_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg);

}  // namespace qwenlong
