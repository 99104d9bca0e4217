// The op profiler (profiler.h). CUDA event pairs come from a pool reused across runs; past kMaxPending pairs the
// pending ones are folded in (one synchronization), so a long profiled run keeps bounded memory.
#include "cuda/common/profiler.h"

#include <map>
#include <mutex>
#include <utility>

#include "cuda/common/cuda_util.h"
#include "cuda/common/error.h"

namespace qwenlong {

std::atomic<bool> g_profiling{false};

namespace {

constexpr int64_t kMaxPending = 1 << 15;

struct Pending {
  const char* op;
  double host_ms;
};

// One profile per process: calls from several threads (each worker thread loading the addon) fold into it under mu.
struct State {
  std::mutex mu;
  std::map<std::pair<std::string, int>, OpProfile> totals;
  std::vector<Pending> pending;  // CUDA records whose events are not read yet
#ifdef QWENLONG_HAVE_CUDA
  std::vector<cudaEvent_t> events;  // 2 per pending record
#endif
};

State& state() {
  static State s;
  return s;
}

OpProfile& total(const char* op, Device device) {
  auto key = std::make_pair(std::string(op), static_cast<int>(device));
  OpProfile& t = state().totals[key];
  t.op = op;
  t.device = device;
  return t;
}

void fold_pending() {
  State& s = state();
#ifdef QWENLONG_HAVE_CUDA
  // Never throws: a pair that cannot be read (a failed launch poisoned the stream) counts its host time only.
  if (!s.pending.empty()) {
    // A failed call's error is cleared (cudaGetLastError), so that no later op's launch check reports it.
    const bool synced = cudaStreamSynchronize(compute_stream()) == cudaSuccess;
    if (!synced) cudaGetLastError();
    for (size_t i = 0; i < s.pending.size(); ++i) {
      float ms = 0;
      if (synced && cudaEventElapsedTime(&ms, s.events[2 * i], s.events[2 * i + 1]) != cudaSuccess) {
        cudaGetLastError();
        ms = 0;
      }
      OpProfile& t = total(s.pending[i].op, Device::cuda);
      t.calls += 1;
      t.host_ms += s.pending[i].host_ms;
      t.device_ms += ms;
    }
  }
#endif
  s.pending.clear();
}

}  // namespace

void profiler_start() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (g_profiling.load()) throw_range("profile: a profile is already running (profiles do not nest)");
  s.totals.clear();
  s.pending.clear();
  g_profiling.store(true);
}

std::vector<OpProfile> profiler_stop() {
  std::lock_guard<std::mutex> lock(state().mu);
  g_profiling.store(false);
  fold_pending();
  std::vector<OpProfile> out;
  for (auto& [key, t] : state().totals) out.push_back(t);
  state().totals.clear();
  return out;
}

void ProfileScope::begin(const char* op, Device device) {
  op_ = op;
  device_ = device;
  active_ = true;
#ifdef QWENLONG_HAVE_CUDA
  if (device == Device::cuda) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    if (static_cast<int64_t>(s.pending.size()) >= kMaxPending) fold_pending();
    const size_t next = s.pending.size();
    bool ok = true;
    while (ok && s.events.size() < 2 * (next + 1)) {
      cudaEvent_t e;
      ok = cudaEventCreate(&e) == cudaSuccess;
      if (ok) s.events.push_back(e);
    }
    ok = ok && cudaEventRecord(s.events[2 * next], compute_stream()) == cudaSuccess;
    if (!ok) {  // profiling must not make an op fail: this call goes unrecorded, and the error is cleared
      cudaGetLastError();
      active_ = false;
      return;
    }
    record_ = static_cast<int64_t>(next);
    s.pending.push_back({op, 0});
  }
#endif
  t0_ = std::chrono::steady_clock::now();
}

void ProfileScope::end() {
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
  if (device_ == Device::cuda && record_ < 0) return;  // a CUDA call on a build without CUDA: it only threw
  std::lock_guard<std::mutex> lock(state().mu);
  if (device_ == Device::cpu) {
    OpProfile& t = total(op_, Device::cpu);
    t.calls += 1;
    t.host_ms += ms;
    t.device_ms += ms;
    return;
  }
#ifdef QWENLONG_HAVE_CUDA
  State& s = state();
  if (record_ < static_cast<int64_t>(s.pending.size()) && s.pending[record_].op == op_) {
    s.pending[record_].host_ms = ms;
    // A failed launch can leave the stream unusable: then the pair is dropped rather than throwing from a destructor.
    if (cudaEventRecord(s.events[2 * record_ + 1], compute_stream()) != cudaSuccess) {
      cudaGetLastError();
      s.pending.resize(record_);
    }
  }
#endif
}

}  // namespace qwenlong
