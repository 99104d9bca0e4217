// Devices, memory and the CUDA context. Host memory is 64-byte aligned; CUDA memory comes from a caching
// allocator (blocks are reused in stream order on the one compute stream, and returned to the driver only by
// empty_cache()). Without a CUDA build every CUDA entry point throws a clear error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace qwenlong {

enum class Device : int { cpu = 0, cuda = 1 };

inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

struct MemoryStats {
  int64_t in_use = 0;  // bytes held by live tensors
  int64_t cached = 0;  // bytes kept by the allocator for reuse (host: large buffers; CUDA: all)
  int64_t peak = 0;    // high-water mark of in_use
};

MemoryStats memory_stats(Device d);

// A block of memory on one device. Owned by tensors through shared_ptr; frees itself.
class Storage {
 public:
  static std::shared_ptr<Storage> allocate(Device device, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  // Tensor handles over this storage (a tensor and its reshape views): the binding counts the memory as a tensor's
  // while any of them lives. Each returns the count after the change.
  int add_holder() { return ++holders_; }
  int drop_holder() { return --holders_; }

 private:
  Storage(Device d, void* p, size_t n) : device_(d), data_(p), bytes_(n) {}
  Device device_;
  void* data_;
  size_t bytes_;
  std::atomic<int> holders_{0};
};

// Copies between any two devices (host<->device copies synchronize with the compute stream).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Set `bytes` of memory to zero.
void zero_bytes(void* dst, Device device, size_t bytes);

struct CudaDeviceInfo {
  std::string name;
  int64_t memory_bytes = 0;
  int sm_count = 0;
  int major = 0, minor = 0;
};

struct CudaStatus {
  bool compiled = false;
  bool available = false;
  std::string reason;            // why CUDA is or is not usable
  std::string archs;             // compiled architectures, e.g. "80-real;90a-real;90-virtual"
  int runtime_version = 0;       // e.g. 13000
  int driver_version = 0;        // 0 when no driver
  std::vector<CudaDeviceInfo> devices;
};

// Probes once (the answer is cached): compiled? driver? devices? a compiled arch the device can run?
const CudaStatus& cuda_status();
// Throws unless CUDA is usable; `what` names the caller in the message.
void require_cuda(const char* what);
// Wait for all queued work on the compute stream; throws with the CUDA error string if a kernel failed.
void cuda_synchronize(const char* what);
// Return cached CUDA blocks to the driver.
void cuda_empty_cache();
// Return the host cache's large buffers to the operating system.
void host_empty_cache();

}  // namespace qwenlong
