// N-API glue for sampling host logits:
// sampleRows(logits: Float32Array, vocab, rows: Int32Array, temperature, uniforms: Float64Array,
//            tokens: Int32Array, logprobs: Float64Array, entropies: Float64Array) -> undefined (outputs filled)
#include "cuda/sample/sample.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

template <typename A>
A typed_arg(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type, const char* kind, const char* arg) {
  const char* op = "sampleRows";
  if (info.Length() <= index || !info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != type)
    throw_type(std::string(op) + ": argument '" + arg + "' must be " + kind);
  A a = info[index].As<A>();
  if (a.ElementLength() > 0 && !a.Data()) throw_type(std::string(op) + ": argument '" + arg + "' is detached");
  return a;
}

Napi::Value SampleRows(const Napi::CallbackInfo& info) {
  const char* op = "sampleRows";
  auto logits = typed_arg<Napi::Float32Array>(info, 0, napi_float32_array, "a Float32Array", "logits");
  const double vocab = number_arg(info, 1, op, "vocab");
  if (!(vocab >= 1 && vocab <= 2147483647.0) || vocab != std::floor(vocab))
    throw_range(std::string(op) + ": argument 'vocab' must be a positive integer");
  const int64_t V = static_cast<int64_t>(vocab);
  if (static_cast<int64_t>(logits.ElementLength()) % V != 0)
    throw_range(std::string(op) + ": 'logits' has " + std::to_string(logits.ElementLength()) + " elements, not a multiple of vocab " + std::to_string(V));
  const int64_t buffer_rows = static_cast<int64_t>(logits.ElementLength()) / V;
  auto rows = typed_arg<Napi::Int32Array>(info, 2, napi_int32_array, "an Int32Array", "rows");
  const double temperature = number_arg(info, 3, op, "temperature");
  if (!(temperature >= 0) || !std::isfinite(temperature)) throw_range(std::string(op) + ": argument 'temperature' must be finite and >= 0");
  auto uniforms = typed_arg<Napi::Float64Array>(info, 4, napi_float64_array, "a Float64Array", "uniforms");
  auto tokens = typed_arg<Napi::Int32Array>(info, 5, napi_int32_array, "an Int32Array", "tokens");
  auto logprobs = typed_arg<Napi::Float64Array>(info, 6, napi_float64_array, "a Float64Array", "logprobs");
  auto entropies = typed_arg<Napi::Float64Array>(info, 7, napi_float64_array, "a Float64Array", "entropies");
  const int64_t n = static_cast<int64_t>(rows.ElementLength());
  for (auto [len, arg] : {std::pair<size_t, const char*>{uniforms.ElementLength(), "uniforms"}, {tokens.ElementLength(), "tokens"},
                          {logprobs.ElementLength(), "logprobs"}, {entropies.ElementLength(), "entropies"}})
    if (static_cast<int64_t>(len) != n) throw_range(std::string(op) + ": '" + arg + "' has " + std::to_string(len) + " elements, 'rows' has " + std::to_string(n));
  // The indices and uniforms are copied before they are checked, and the results written to the caller's arrays
  // only at the end: arrays that share memory (or a SharedArrayBuffer changed meanwhile) cannot move a checked row
  // index out of range while the rows are sampled.
  std::vector<int32_t> row_ids(rows.Data(), rows.Data() + n);
  std::vector<double> u(uniforms.Data(), uniforms.Data() + n);
  for (int64_t i = 0; i < n; ++i)
    if (row_ids[i] < 0 || row_ids[i] >= buffer_rows)
      throw_range(std::string(op) + ": rows[" + std::to_string(i) + "] = " + std::to_string(row_ids[i]) + " is outside [0, " + std::to_string(buffer_rows) + ")");
  for (int64_t i = 0; i < n && temperature > 0; ++i)
    if (!(u[i] >= 0 && u[i] < 1)) throw_range(std::string(op) + ": uniforms[" + std::to_string(i) + "] is outside [0, 1)");
  std::vector<int32_t> tok(n);
  std::vector<double> lp(n), ent(n);
  SampleParams p;
  p.logits = logits.Data();
  p.vocab = V;
  p.rows = row_ids.data();
  p.count = n;
  p.temperature = temperature;
  p.uniforms = u.data();
  p.tokens = tok.data();
  p.logprobs = lp.data();
  p.entropies = ent.data();
  sample_rows_cpu(p);
  std::copy(tok.begin(), tok.end(), tokens.Data());
  std::copy(lp.begin(), lp.end(), logprobs.Data());
  std::copy(ent.begin(), ent.end(), entropies.Data());
  return info.Env().Undefined();
}

}  // namespace

void register_sample(Napi::Env env, Napi::Object exports) {
  exports.Set("sampleRows", Napi::Function::New<guarded<SampleRows>>(env, "sampleRows"));
}

}  // namespace qwenlong
