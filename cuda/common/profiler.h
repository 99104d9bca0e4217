// An op-level profiler: while it runs, every op that goes through the bindings' dispatch records its host time
// (the call, including launches, allocations and any synchronous copy) and, on CUDA, its device time (a pair of
// events around the op's work on the compute stream). stop() folds the records into one line per (op, device).
// Single-threaded use (ops are called from the JS thread); off, a scope costs one relaxed atomic load.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/common/device.h"

namespace qwenlong {

struct OpProfile {
  std::string op;
  Device device = Device::cpu;
  int64_t calls = 0;
  double host_ms = 0;    // wall time inside the call
  double device_ms = 0;  // CUDA: event time of its work on the stream; CPU: the host time
};

extern std::atomic<bool> g_profiling;

void profiler_start();
std::vector<OpProfile> profiler_stop();

class ProfileScope {
 public:
  ProfileScope(const char* op, Device device) {
    if (!g_profiling.load(std::memory_order_relaxed)) return;
    begin(op, device);
  }
  ~ProfileScope() {
    if (active_) end();
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  void begin(const char* op, Device device);
  void end();
  bool active_ = false;
  const char* op_ = nullptr;
  Device device_ = Device::cpu;
  int64_t record_ = -1;  // CUDA: the index of its event pair
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace qwenlong
