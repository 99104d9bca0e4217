// N-API glue for embedding.
//   embedding(ids, table, out | null) -> out (ids.shape + [C])
//   embeddingBackward(dout, ids, vocab, dtable | null, accumulate) -> dtable (V, C) f32
#include "cuda/embedding/embedding.h"

#include <cmath>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const char* op = "ops.embedding";
  TensorHandle* ids = unwrap_tensor(info, 0, op, "ids");
  TensorHandle* table = unwrap_tensor(info, 1, op, "table");
  check_dtype(ids, {DType::i32}, op, "ids");
  check_dtype(table, {DType::f32, DType::f16, DType::bf16}, op, "table");
  check_same_device(ids, table, op, "ids");
  if (table->shape().size() != 2) throw_range(std::string(op) + ": argument 'table' must have shape (vocab, dim)");
  const int64_t vocab = table->shape()[0], dim = table->shape()[1];
  std::vector<int64_t> shape = ids->shape();
  shape.push_back(dim);
  TensorHandle* out = nullptr;
  Napi::Value result = output_arg(info, 2, op, "out", table->device(), table->dtype(), shape, &out);
  EmbeddingParams p;
  p.ids = static_cast<const int32_t*>(ids->data());
  p.table = table->data();
  p.out = out->data();
  p.tokens = ids->numel();
  p.vocab = vocab;
  p.dim = dim;
  p.dtype = table->dtype();
  dispatch(table->device(), op, [&] { embedding_forward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(embedding_forward_cuda(p)); });
  return result;
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "ops.embeddingBackward";
  TensorHandle* dout = unwrap_tensor(info, 0, op, "dout");
  TensorHandle* ids = unwrap_tensor(info, 1, op, "ids");
  check_dtype(ids, {DType::i32}, op, "ids");
  check_dtype(dout, {DType::f32, DType::f16, DType::bf16}, op, "dout");
  check_same_device(ids, dout, op, "ids");
  const int64_t dim = last_dim(dout, op, "dout");
  if (dout->numel() != ids->numel() * dim)
    throw_range(std::string(op) + ": argument 'dout' must have shape ids.shape + [dim] (" + std::to_string(ids->numel()) + " rows)");
  const double vocab = number_arg(info, 2, op, "vocab");
  if (!(vocab >= 1 && vocab <= 2147483647.0) || vocab != std::floor(vocab))
    throw_range(std::string(op) + ": argument 'vocab' must be an integer from 1 to 2^31 - 1");
  const bool accumulate = bool_arg(info, 4, op, "accumulate");
  if (accumulate && !unwrap_optional_tensor(info, 3, op, "dtable")) throw_type(std::string(op) + ": accumulating needs a 'dtable' tensor");
  TensorHandle* dtable = nullptr;
  Napi::Value result = output_arg(info, 3, op, "dtable", dout->device(), DType::f32, {static_cast<int64_t>(vocab), dim}, &dtable);
  EmbeddingParams p;
  p.ids = static_cast<const int32_t*>(ids->data());
  p.dout = dout->data();
  p.dtable = static_cast<float*>(dtable->data());
  p.accumulate = accumulate;
  p.tokens = ids->numel();
  p.vocab = static_cast<int64_t>(vocab);
  p.dim = dim;
  p.dtype = dout->dtype();
  dispatch(dout->device(), op, [&] { embedding_backward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(embedding_backward_cuda(p)); });
  return result;
}

}  // namespace

void register_embedding(Napi::Env env, Napi::Object exports) {
  exports.Set("embedding", Napi::Function::New<guarded<Embedding>>(env, "embedding"));
  exports.Set("embeddingBackward", Napi::Function::New<guarded<EmbeddingBackward>>(env, "embeddingBackward"));
}

}  // namespace qwenlong
