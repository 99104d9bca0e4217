// N-API glue for attention.
//   attention(q, k, v, cuSeqlensQ | null, cuSeqlensK | null, causal, scale, out | null, lse | null) -> [out, lse]
//   attentionBackward(dout, q, k, v, out, lse, cuSeqlensQ | null, cuSeqlensK | null, causal, scale,
//                     dq | null, dk | null, dv | null) -> [dq, dk, dv]
// cuSeqlens: an Int32Array or an i32 tensor of length B + 1. It is always read on the host to validate it (and to
// find the longest sequence); a CUDA op gets a device copy of an Int32Array.
#include "cuda/attention/attention.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

struct SeqlensArg {
  std::vector<int32_t> host;         // empty when the argument is absent
  std::shared_ptr<Storage> device;   // a device copy of an Int32Array, for CUDA ops
  const int32_t* pointer = nullptr;  // what the op reads: host data on the CPU, device data on CUDA
};

SeqlensArg seqlens_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg, Device device) {
  SeqlensArg s;
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return s;
  const Napi::Value value = info[index];
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array a = value.As<Napi::Int32Array>();
    const int32_t* data = a.Data();
    if (a.ElementLength() > 0 && !data) throw_type(std::string(op) + ": argument '" + arg + "' is detached");
    s.host.assign(data, data + a.ElementLength());
  } else if (TensorHandle::IsHandle(info.Env(), value)) {
    TensorHandle* t = unwrap_tensor(info, index, op, arg);
    check_dtype(t, {DType::i32}, op, arg);
    if (t->device() != device)
      throw_type(std::string(op) + ": argument '" + arg + "' is on " + device_name(t->device()) + ", expected " + device_name(device));
    if (t->shape().size() != 1) throw_range(std::string(op) + ": argument '" + arg + "' must be one-dimensional (batch + 1)");
    s.host.resize(static_cast<size_t>(t->numel()));
    if (t->numel() > 0) copy_bytes(s.host.data(), Device::cpu, t->data(), t->device(), t->nbytes());
    if (device == Device::cuda) s.pointer = static_cast<const int32_t*>(t->data());
  } else {
    throw_type(std::string(op) + ": argument '" + arg + "' must be an Int32Array or an i32 Tensor");
  }
  return s;
}

// Outputs must not share memory with each other or with an input: every output is written while inputs are read.
void check_distinct(const char* op, std::initializer_list<const TensorHandle*> outputs, std::initializer_list<const TensorHandle*> inputs) {
  std::vector<const void*> seen;
  for (const TensorHandle* t : inputs) seen.push_back(t->data());
  for (const TensorHandle* t : outputs) {
    if (t->numel() > 0 && std::find(seen.begin(), seen.end(), t->data()) != seen.end())
      throw_type(std::string(op) + ": an output tensor is also an input or another output; pass separate tensors");
    seen.push_back(t->data());
  }
}

// Checks that cu is a prefix sum over B >= 1 sequences from 0 to total; returns the longest sequence.
int64_t check_seqlens(const std::vector<int32_t>& cu, int64_t total, const char* op, const char* arg) {
  if (cu.size() < 2) throw_range(std::string(op) + ": argument '" + arg + "' needs at least 2 entries (batch + 1)");
  if (cu[0] != 0) throw_range(std::string(op) + ": argument '" + arg + "' must start at 0, not " + std::to_string(cu[0]));
  int64_t longest = 0;
  for (size_t b = 1; b < cu.size(); ++b) {
    if (cu[b] < cu[b - 1])
      throw_range(std::string(op) + ": argument '" + arg + "' must be non-decreasing (entry " + std::to_string(b) + " is " +
                  std::to_string(cu[b]) + " after " + std::to_string(cu[b - 1]) + ")");
    longest = std::max<int64_t>(longest, cu[b] - cu[b - 1]);
  }
  if (cu.back() != total)
    throw_range(std::string(op) + ": argument '" + arg + "' ends at " + std::to_string(cu.back()) + " but the tensor has " + std::to_string(total) + " rows");
  return longest;
}

// The shared arguments of both ops: q, k, v, the sequences, causal, scale. Fills p (except outputs) and keeps the
// device copies of cu_seqlens alive in `keep`.
void attention_args(const Napi::CallbackInfo& info, const char* op, TensorHandle* q, TensorHandle* k, TensorHandle* v, size_t cu_index,
                    AttentionParams* p, SeqlensArg* keep_q, SeqlensArg* keep_k) {
  check_dtype(q, {DType::f32, DType::f16, DType::bf16}, op, "q");
  check_same_dtype(k, q, op, "k");
  check_same_dtype(v, q, op, "v");
  check_same_device(k, q, op, "k");
  check_same_device(v, q, op, "v");
  if (q->shape().size() != 3) throw_range(std::string(op) + ": argument 'q' must have shape (totalQ, headsQ, headDim)");
  if (k->shape().size() != 3) throw_range(std::string(op) + ": argument 'k' must have shape (totalK, headsKv, headDim)");
  if (v->shape() != k->shape()) throw_range(std::string(op) + ": argument 'v' must have k's shape");
  const int64_t D = q->shape()[2];
  if (D < 1 || D > 256) throw_range(std::string(op) + ": head dimension " + std::to_string(D) + " is outside [1, 256]");
  if (k->shape()[2] != D) throw_range(std::string(op) + ": argument 'k' has head dimension " + std::to_string(k->shape()[2]) + ", q has " + std::to_string(D));
  const int64_t hq = q->shape()[1], hkv = k->shape()[1];
  if (hq < 1 || hkv < 1 || hq % hkv != 0)
    throw_range(std::string(op) + ": query heads (" + std::to_string(hq) + ") must be a positive multiple of key/value heads (" + std::to_string(hkv) + ")");
  const Device device = q->device();
  *keep_q = seqlens_arg(info, cu_index, op, "cuSeqlensQ", device);
  *keep_k = seqlens_arg(info, cu_index + 1, op, "cuSeqlensK", device);
  if (keep_q->host.empty() != keep_k->host.empty()) throw_type(std::string(op) + ": give both 'cuSeqlensQ' and 'cuSeqlensK', or neither");
  p->total_q = q->shape()[0];
  p->total_k = k->shape()[0];
  p->heads_q = hq;
  p->heads_kv = hkv;
  p->head_dim = D;
  p->batch = 1;
  p->max_seqlen_q = p->total_q;
  p->max_seqlen_k = p->total_k;
  if (!keep_q->host.empty()) {
    if (keep_q->host.size() != keep_k->host.size())
      throw_range(std::string(op) + ": 'cuSeqlensQ' has " + std::to_string(keep_q->host.size()) + " entries and 'cuSeqlensK' " + std::to_string(keep_k->host.size()));
    p->max_seqlen_q = check_seqlens(keep_q->host, p->total_q, op, "cuSeqlensQ");
    p->max_seqlen_k = check_seqlens(keep_k->host, p->total_k, op, "cuSeqlensK");
    p->batch = static_cast<int64_t>(keep_q->host.size()) - 1;
    for (SeqlensArg* s : {keep_q, keep_k}) {
      if (device == Device::cpu) {
        s->pointer = s->host.data();
      } else if (!s->pointer) {
        s->device = Storage::allocate(Device::cuda, s->host.size() * sizeof(int32_t));
        copy_bytes(s->device->data(), Device::cuda, s->host.data(), Device::cpu, s->host.size() * sizeof(int32_t));
        s->pointer = static_cast<const int32_t*>(s->device->data());
      }
    }
    p->cu_seqlens_q = keep_q->pointer;
    p->cu_seqlens_k = keep_k->pointer;
  }
  p->causal = bool_arg(info, cu_index + 2, op, "causal");
  p->scale = finite_float_arg(info, cu_index + 3, op, "scale");
  if (!(p->scale > 0)) throw_range(std::string(op) + ": argument 'scale' must be positive");
  p->dtype = q->dtype();
  p->q = q->data();
  p->k = k->data();
  p->v = v->data();
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  const char* op = "ops.attention";
  TensorHandle* q = unwrap_tensor(info, 0, op, "q");
  TensorHandle* k = unwrap_tensor(info, 1, op, "k");
  TensorHandle* v = unwrap_tensor(info, 2, op, "v");
  AttentionParams p;
  SeqlensArg cu_q, cu_k;
  attention_args(info, op, q, k, v, 3, &p, &cu_q, &cu_k);
  TensorHandle *out = nullptr, *lse = nullptr;
  Napi::Value out_value = output_arg(info, 7, op, "out", q->device(), q->dtype(), q->shape(), &out);
  Napi::Value lse_value = output_arg(info, 8, op, "lse", q->device(), DType::f32, {p.heads_q, p.total_q}, &lse);
  check_distinct(op, {out, lse}, {q, k, v});
  p.out = out->data();
  p.lse = static_cast<float*>(lse->data());
  if (p.total_q > 0)
    dispatch(q->device(), op, [&] { attention_forward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(attention_forward_cuda(p)); });
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, out_value);
  result.Set(1u, lse_value);
  return result;
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "ops.attentionBackward";
  TensorHandle* dout = unwrap_tensor(info, 0, op, "dOut");
  TensorHandle* q = unwrap_tensor(info, 1, op, "q");
  TensorHandle* k = unwrap_tensor(info, 2, op, "k");
  TensorHandle* v = unwrap_tensor(info, 3, op, "v");
  TensorHandle* out = unwrap_tensor(info, 4, op, "out");
  TensorHandle* lse = unwrap_tensor(info, 5, op, "lse");
  AttentionParams p;
  SeqlensArg cu_q, cu_k;
  attention_args(info, op, q, k, v, 6, &p, &cu_q, &cu_k);
  check_like(dout, q, op, "dOut");
  check_like(out, q, op, "out");
  check_dtype(lse, {DType::f32}, op, "lse");
  check_same_device(lse, q, op, "lse");
  check_numel(lse, p.heads_q * p.total_q, op, "lse");
  TensorHandle *dq = nullptr, *dk = nullptr, *dv = nullptr;
  Napi::Value dq_value = output_arg(info, 10, op, "dq", q->device(), q->dtype(), q->shape(), &dq);
  Napi::Value dk_value = output_arg(info, 11, op, "dk", k->device(), k->dtype(), k->shape(), &dk);
  Napi::Value dv_value = output_arg(info, 12, op, "dv", v->device(), v->dtype(), v->shape(), &dv);
  check_distinct(op, {dq, dk, dv}, {dout, q, k, v, out, lse});
  p.dout = dout->data();
  p.out_in = out->data();
  p.lse_in = static_cast<const float*>(lse->data());
  p.dq = dq->data();
  p.dk = dk->data();
  p.dv = dv->data();
  if (p.total_q > 0 || p.total_k > 0)
    dispatch(q->device(), op, [&] { attention_backward_cpu(p); }, [&] { QWENLONG_CUDA_CALL(attention_backward_cuda(p)); });
  Napi::Array result = Napi::Array::New(info.Env(), 3);
  result.Set(0u, dq_value);
  result.Set(1u, dk_value);
  result.Set(2u, dv_value);
  return result;
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New<guarded<Attention>>(env, "attention"));
  exports.Set("attentionBackward", Napi::Function::New<guarded<AttentionBackward>>(env, "attentionBackward"));
}

}  // namespace qwenlong
