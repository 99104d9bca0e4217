// N-API glue for the paged KV cache.
//   kvWrite(poolK, poolV, k, v, slots: Int32Array)                      writes n tokens' K and V into their slots
//   kvCopyBlocks(pool, pairs: Int32Array)                                pool[dst] = pool[src] for (src, dst) pairs
//   pagedAttention(q, poolK, poolV, blockTables: Int32Array, tableStride, contextLens: Int32Array,
//                  cuSeqlensQ: Int32Array, causal, scale, splitSize, out | null) -> out
// Index arrays arrive on the host and are validated here in full (every slot, block id, length) before any kernel
// runs, so a bad index is an error, never a stray write; CUDA ops get device copies.
#include "cuda/kv_cache/kv_cache.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "binding/checks.h"
#include "binding/guard.h"
#include "binding/ops.h"

namespace qwenlong {

namespace {

std::vector<int32_t> int32_array(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg) {
  if (info.Length() <= index || !info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_type(std::string(op) + ": argument '" + arg + "' must be an Int32Array");
  Napi::Int32Array a = info[index].As<Napi::Int32Array>();
  if (a.ElementLength() > 0 && !a.Data()) throw_type(std::string(op) + ": argument '" + arg + "' is detached");
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* arg, int64_t lo, int64_t hi) {
  const double x = number_arg(info, index, op, arg);
  if (!(x >= static_cast<double>(lo) && x <= static_cast<double>(hi)) || x != static_cast<double>(static_cast<int64_t>(x)))
    throw_range(std::string(op) + ": argument '" + arg + "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(x);
}

// A pool: (numBlocks, kvHeads, blockSize, headDim).
void check_pool(const TensorHandle* t, const char* op, const char* arg) {
  check_dtype(t, {DType::f32, DType::f16, DType::bf16}, op, arg);
  if (t->shape().size() != 4) throw_range(std::string(op) + ": argument '" + arg + "' must have shape (numBlocks, kvHeads, blockSize, headDim)");
}

// Host indices as a pointer the op reads: the host vector on the CPU, a device copy (kept alive in `keep`) on CUDA.
const int32_t* on_device(const std::vector<int32_t>& host, Device device, std::shared_ptr<Storage>* keep) {
  if (device == Device::cpu || host.empty()) return host.data();
  *keep = Storage::allocate(Device::cuda, host.size() * sizeof(int32_t));
  copy_bytes((*keep)->data(), Device::cuda, host.data(), Device::cpu, host.size() * sizeof(int32_t));
  return static_cast<const int32_t*>((*keep)->data());
}

Napi::Value KvWrite(const Napi::CallbackInfo& info) {
  const char* op = "kvCache.write";
  TensorHandle* pool_k = unwrap_tensor(info, 0, op, "poolK");
  TensorHandle* pool_v = unwrap_tensor(info, 1, op, "poolV");
  TensorHandle* k = unwrap_tensor(info, 2, op, "k");
  TensorHandle* v = unwrap_tensor(info, 3, op, "v");
  check_pool(pool_k, op, "poolK");
  check_like(pool_v, pool_k, op, "poolV");
  check_same_dtype(k, pool_k, op, "k");
  check_same_device(k, pool_k, op, "k");
  check_like(v, k, op, "v");
  const auto& ps = pool_k->shape();
  const int64_t blocks = ps[0], hkv = ps[1], bs = ps[2], D = ps[3];
  if (k->shape().size() != 3 || k->shape()[1] != hkv || k->shape()[2] != D)
    throw_range(std::string(op) + ": argument 'k' must have shape (n, " + std::to_string(hkv) + ", " + std::to_string(D) + ")");
  const std::vector<int32_t> slots = int32_array(info, 4, op, "slots");
  const int64_t n = k->shape()[0];
  if (static_cast<int64_t>(slots.size()) != n)
    throw_range(std::string(op) + ": argument 'slots' has " + std::to_string(slots.size()) + " entries for " + std::to_string(n) + " tokens");
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i] < 0 || slots[i] >= blocks * bs)
      throw_range(std::string(op) + ": slots[" + std::to_string(i) + "] = " + std::to_string(slots[i]) + " is outside the pool's " + std::to_string(blocks * bs) + " slots");
  KvWriteParams p;
  p.k = k->data();
  p.v = v->data();
  p.pool_k = pool_k->data();
  p.pool_v = pool_v->data();
  p.n = n;
  p.heads_kv = hkv;
  p.head_dim = D;
  p.block_size = bs;
  p.dtype = pool_k->dtype();
  std::shared_ptr<Storage> keep;
  p.slots = on_device(slots, pool_k->device(), &keep);
  if (n > 0) dispatch(pool_k->device(), op, [&] { kv_write_cpu(p); }, [&] { QWENLONG_CUDA_CALL(kv_write_cuda(p)); });
  return info.Env().Undefined();
}

Napi::Value KvCopyBlocks(const Napi::CallbackInfo& info) {
  const char* op = "kvCache.copyBlocks";
  TensorHandle* pool = unwrap_tensor(info, 0, op, "pool");
  check_pool(pool, op, "pool");
  const std::vector<int32_t> pairs = int32_array(info, 1, op, "pairs");
  if (pairs.size() % 2 != 0) throw_range(std::string(op) + ": argument 'pairs' must hold (src, dst) pairs");
  const int64_t blocks = pool->shape()[0];
  for (size_t i = 0; i < pairs.size(); ++i)
    if (pairs[i] < 0 || pairs[i] >= blocks)
      throw_range(std::string(op) + ": pairs[" + std::to_string(i) + "] = " + std::to_string(pairs[i]) + " is not a block of the pool (" + std::to_string(blocks) + " blocks)");
  KvCopyParams p;
  p.pool = pool->data();
  p.pairs = pairs.data();
  p.count = static_cast<int64_t>(pairs.size() / 2);
  p.block_elems = pool->shape()[1] * pool->shape()[2] * pool->shape()[3];
  p.dtype = pool->dtype();
  if (p.count > 0) dispatch(pool->device(), op, [&] { kv_copy_blocks_cpu(p); }, [&] { QWENLONG_CUDA_CALL(kv_copy_blocks_cuda(p)); });
  return info.Env().Undefined();
}

Napi::Value PagedAttention(const Napi::CallbackInfo& info) {
  const char* op = "ops.pagedAttention";
  TensorHandle* q = unwrap_tensor(info, 0, op, "q");
  TensorHandle* pool_k = unwrap_tensor(info, 1, op, "poolK");
  TensorHandle* pool_v = unwrap_tensor(info, 2, op, "poolV");
  check_pool(pool_k, op, "poolK");
  check_like(pool_v, pool_k, op, "poolV");
  check_same_dtype(q, pool_k, op, "q");
  check_same_device(q, pool_k, op, "q");
  const auto& ps = pool_k->shape();
  const int64_t blocks = ps[0], hkv = ps[1], bs = ps[2], D = ps[3];
  if (q->shape().size() != 3 || q->shape()[2] != D)
    throw_range(std::string(op) + ": argument 'q' must have shape (totalQ, headsQ, " + std::to_string(D) + ")");
  const int64_t hq = q->shape()[1], total_q = q->shape()[0];
  if (hq < 1 || hq % hkv != 0)
    throw_range(std::string(op) + ": query heads (" + std::to_string(hq) + ") must be a positive multiple of the cache's kv heads (" + std::to_string(hkv) + ")");
  const std::vector<int32_t> tables = int32_array(info, 3, op, "blockTables");
  const int64_t stride = int_arg(info, 4, op, "tableStride", 0, INT32_MAX);
  const std::vector<int32_t> lens = int32_array(info, 5, op, "contextLens");
  const std::vector<int32_t> cu = int32_array(info, 6, op, "cuSeqlensQ");
  const int64_t B = static_cast<int64_t>(lens.size());
  if (static_cast<int64_t>(cu.size()) != B + 1)
    throw_range(std::string(op) + ": 'cuSeqlensQ' has " + std::to_string(cu.size()) + " entries for " + std::to_string(B) + " sequences (expected " + std::to_string(B + 1) + ")");
  if (static_cast<int64_t>(tables.size()) != B * stride) throw_range(std::string(op) + ": 'blockTables' must hold batch x tableStride entries");
  if (cu.empty() || cu[0] != 0 || cu.back() != total_q)
    throw_range(std::string(op) + ": 'cuSeqlensQ' must run from 0 to the " + std::to_string(total_q) + " rows of q");
  int64_t max_q = 0, max_k = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len_q = cu[b + 1] - cu[b], len_k = lens[b];
    if (len_q < 0) throw_range(std::string(op) + ": 'cuSeqlensQ' must be non-decreasing");
    if (len_k < len_q)
      throw_range(std::string(op) + ": sequence " + std::to_string(b) + " has " + std::to_string(len_q) + " query rows but only " + std::to_string(len_k) +
                  " cached tokens (queries must be tokens already written)");
    const int64_t need = (len_k + bs - 1) / bs;
    if (need > stride) throw_range(std::string(op) + ": sequence " + std::to_string(b) + " needs " + std::to_string(need) + " blocks, its table holds " + std::to_string(stride));
    for (int64_t i = 0; i < need; ++i) {
      const int32_t blk = tables[b * stride + i];
      if (blk < 0 || blk >= blocks) throw_range(std::string(op) + ": blockTables[" + std::to_string(b) + ", " + std::to_string(i) + "] = " + std::to_string(blk) + " is not a block of the pool");
    }
    max_q = std::max(max_q, len_q);
    max_k = std::max(max_k, len_k);
  }
  const bool causal = bool_arg(info, 7, op, "causal");
  const float scale = finite_float_arg(info, 8, op, "scale");
  if (!(scale > 0)) throw_range(std::string(op) + ": argument 'scale' must be positive");
  const int64_t split = int_arg(info, 9, op, "splitSize", 1, INT32_MAX);
  if (split % bs != 0) throw_range(std::string(op) + ": 'splitSize' (" + std::to_string(split) + ") must be a multiple of the block size " + std::to_string(bs));
  TensorHandle* out = nullptr;
  Napi::Value out_value = output_arg(info, 10, op, "out", q->device(), q->dtype(), q->shape(), &out);
  if (out->numel() > 0 && out->data() == q->data()) throw_type(std::string(op) + ": 'out' must not be 'q'");

  PagedAttentionParams p;
  p.q = q->data();
  p.out = out->data();
  p.pool_k = pool_k->data();
  p.pool_v = pool_v->data();
  p.table_stride = stride;
  p.batch = B;
  p.total_q = total_q;
  p.heads_q = hq;
  p.heads_kv = hkv;
  p.head_dim = D;
  p.block_size = bs;
  p.max_seqlen_q = max_q;
  p.max_context = max_k;
  p.split_size = split;
  p.num_splits = std::max<int64_t>(1, (max_k + split - 1) / split);
  p.scale = scale;
  p.causal = causal;
  p.dtype = q->dtype();
  const Device device = q->device();
  std::shared_ptr<Storage> keep_tables, keep_lens, keep_cu, ws;
  p.block_tables = on_device(tables, device, &keep_tables);
  p.context_lens = on_device(lens, device, &keep_lens);
  p.cu_seqlens_q = on_device(cu, device, &keep_cu);
  if (p.num_splits > 1 && total_q > 0) {
    const double bytes = static_cast<double>(p.num_splits) * total_q * hq * (D + 2) * 4.0;
    if (bytes > 4.0 * (1u << 30))
      throw_range(std::string(op) + ": " + std::to_string(p.num_splits) + " partitions of " + std::to_string(total_q) + " query rows need " +
                  std::to_string(static_cast<int64_t>(bytes / (1 << 20))) + " MiB of workspace; pass a larger 'splitSize'");
    const size_t ml = static_cast<size_t>(p.num_splits * total_q * hq * 2);
    ws = Storage::allocate(device, (ml + static_cast<size_t>(p.num_splits * total_q * hq * D)) * sizeof(float));
    p.ws_ml = static_cast<float*>(ws->data());
    p.ws_acc = p.ws_ml + ml;
  }
  if (total_q > 0) dispatch(device, op, [&] { paged_attention_cpu(p); }, [&] { QWENLONG_CUDA_CALL(paged_attention_cuda(p)); });
  return out_value;
}

// readStream(t: f32 CPU tensor) -> sum: the read-only memory stream the decode benchmark compares itself with.
Napi::Value ReadStream(const Napi::CallbackInfo& info) {
  TensorHandle* t = unwrap_tensor(info, 0, "readStream", "t");
  check_dtype(t, {DType::f32}, "readStream", "t");
  if (t->device() != Device::cpu) throw_type("readStream: argument 't' must be on cpu");
  return Napi::Number::New(info.Env(), read_stream_cpu(static_cast<const float*>(t->data()), t->numel()));
}

}  // namespace

void register_kv_cache(Napi::Env env, Napi::Object exports) {
  exports.Set("kvWrite", Napi::Function::New<guarded<KvWrite>>(env, "kvWrite"));
  exports.Set("kvCopyBlocks", Napi::Function::New<guarded<KvCopyBlocks>>(env, "kvCopyBlocks"));
  exports.Set("pagedAttention", Napi::Function::New<guarded<PagedAttention>>(env, "pagedAttention"));
  exports.Set("readStream", Napi::Function::New<guarded<ReadStream>>(env, "readStream"));
}

}  // namespace qwenlong
