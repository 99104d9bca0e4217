#include "cuda/common/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include <unordered_map>
#include <vector>

#include "cuda/common/cuda_util.h"
#include "cuda/common/error.h"
#ifdef QWENLONG_HAVE_CUDA
#include "qwenlong_cuda_archs.h"
#endif

namespace qwenlong {

namespace {

struct Counter {
  std::atomic<int64_t> in_use{0};
  std::atomic<int64_t> peak{0};
  void add(int64_t n) {
    int64_t now = in_use.fetch_add(n) + n;
    int64_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
  void sub(int64_t n) { in_use.fetch_sub(n); }
};

Counter& host_counter() {
  static Counter c;
  return c;
}

// Host caching allocator for large buffers. glibc serves them from its heap once its dynamic mmap threshold has
// risen (it does after the first large free), and a training loop's mix of sizes then fragments that heap: the
// process grew by ~0.5 GB per RL step while live tensors stayed at 13 MB. Plain mmap per buffer fixes the growth
// but pays fresh page faults and zeroing on every op (40% slower steps). So: large buffers are mmapped in rounded
// sizes and kept on free in a size-ordered cache (up to a byte cap), reused by the next request that fits with at
// most 25% waste. Small buffers stay with malloc. Under AddressSanitizer every buffer goes through malloc, so
// overflows and use-after-free of a tensor's memory are still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kHostCache = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kHostCache = false;
#else
constexpr bool kHostCache = true;
#endif
#else
constexpr bool kHostCache = true;
#endif

constexpr size_t kLargeHost = size_t{1} << 16;  // 64 KiB and up: mmapped and cached

class HostCache {
 public:
  static size_t round(size_t bytes) {
    const size_t unit = bytes >= (size_t{8} << 20) ? (size_t{2} << 20) : (size_t{64} << 10);
    return (bytes + unit - 1) / unit * unit;
  }

  void* allocate(size_t rounded) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(rounded);
      if (it != free_.end() && it->first <= rounded + rounded / 4) {
        void* p = it->second;
        sizes_[p] = it->first;
        cached_ -= it->first;
        free_.erase(it);
        return p;
      }
    }
    void* p = map(rounded);
    if (!p) {
      release_all();  // the cache may hold what the request needs
      p = map(rounded);
    }
    if (!p) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = rounded;
    return p;
  }

  void release(void* p) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    const size_t bytes = it->second;
    sizes_.erase(it);
    if (bytes > cap()) {
      lock.unlock();
      munmap(p, bytes);
      return;
    }
    free_.emplace(bytes, p);
    cached_ += bytes;
    // over the cap: unmap the largest cached blocks first
    std::vector<std::pair<size_t, void*>> drop;
    while (cached_ > cap() && !free_.empty()) {
      auto last = std::prev(free_.end());
      drop.emplace_back(*last);
      cached_ -= last->first;
      free_.erase(last);
    }
    lock.unlock();
    for (auto& [n, q] : drop) munmap(q, n);
  }

  void release_all() {
    std::multimap<size_t, void*> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      drop.swap(free_);
      cached_ = 0;
    }
    for (auto& [n, q] : drop) munmap(q, n);
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  // Buffers in whole 2 MiB units (every one of 8 MiB and up) start on a 2 MiB boundary and ask for transparent huge
  // pages: one TLB entry per 2 MiB instead of 512, and the hardware prefetchers, which stop at page boundaries, run
  // on. 2-core Zen 4 VM, 16 x 4K bf16 paged decode (256 MiB of K/V) beside a read stream over 256 MiB, same process,
  // six alternated rounds: 31-33 -> 37-39 GB/s and 44-49 -> 52-60 GB/s where the machine's memory was fast, no
  // change where it was slow. QWENLONG_HUGE_PAGES=0 (read once, at the first large buffer) keeps 4 KiB pages.
  static void* map(size_t bytes) {
    constexpr size_t kHuge = size_t{2} << 20;
    static const bool huge = [] {
      const char* env = getenv("QWENLONG_HUGE_PAGES");
      return !(env && std::strcmp(env, "0") == 0);
    }();
    if (!huge || bytes % kHuge != 0) {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      return p == MAP_FAILED ? nullptr : p;
    }
    // 2 MiB more than asked for, then the parts before and after an aligned run of `bytes` unmapped
    void* raw = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const uintptr_t base = reinterpret_cast<uintptr_t>(raw), start = (base + kHuge - 1) & ~(uintptr_t{kHuge} - 1);
    if (start > base) munmap(raw, start - base);
    munmap(reinterpret_cast<void*>(start + bytes), kHuge - (start - base));  // never empty: start - base < 2 MiB
    void* p = reinterpret_cast<void*>(start);
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
  }
  // An eighth of the machine's memory, at most 4 GiB.
  static size_t cap() {
    static const size_t c = std::min<size_t>(size_t{4} << 30, static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE)) / 8);
    return c;
  }
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> sizes_;
  size_t cached_ = 0;
};

HostCache& host_cache() {
  static HostCache* c = new HostCache();  // never destroyed: tensors may be freed during process exit
  return *c;
}

#ifdef QWENLONG_HAVE_CUDA
// Caching allocator: blocks of a rounded size are kept in per-size free lists and reused. All kernels run on one
// stream, so a block freed after its last kernel was queued can be handed to the next kernel at once.
class CudaAllocator {
 public:
  static size_t round_size(size_t bytes) {
    const size_t small = 512, large = size_t(2) << 20;
    if (bytes < (size_t(1) << 20)) return (bytes + small - 1) / small * small;
    return (bytes + large - 1) / large * large;
  }

  void* allocate(size_t bytes) {
    size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto bin = free_.find(size);
    void* p = nullptr;
    if (bin != free_.end() && !bin->second.empty()) {
      p = bin->second.back();
      bin->second.pop_back();
      cached_ -= size;
    } else {
      cudaError_t err = cudaMalloc(&p, size);
      if (err == cudaErrorMemoryAllocation) {  // give the cache back and try once more
        cudaGetLastError();
        release_cached_locked();
        err = cudaMalloc(&p, size);
      }
      if (err != cudaSuccess) {
        cudaGetLastError();
        throw_range("cannot allocate " + std::to_string(bytes) + " bytes of CUDA memory: " + cudaGetErrorString(err));
      }
    }
    sizes_[p] = size;
    counter_.add(static_cast<int64_t>(size));
    return p;
  }

  void release(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return;
    size_t size = it->second;
    sizes_.erase(it);
    free_[size].push_back(p);
    cached_ += size;
    counter_.sub(static_cast<int64_t>(size));
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    cudaStreamSynchronize(compute_stream());
    release_cached_locked();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return MemoryStats{counter_.in_use.load(), static_cast<int64_t>(cached_), counter_.peak.load()};
  }

 private:
  void release_cached_locked() {
    for (auto& bin : free_)
      for (void* p : bin.second) cudaFree(p);
    free_.clear();
    cached_ = 0;
  }
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> sizes_;
  size_t cached_ = 0;
  Counter counter_;
};

CudaAllocator& cuda_allocator() {
  static CudaAllocator* a = new CudaAllocator();  // never destroyed: tensors may be freed during teardown
  return *a;
}
#endif

}  // namespace

#ifdef QWENLONG_HAVE_CUDA
cudaStream_t compute_stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
    return s;
  }();
  return stream;
}
#endif

MemoryStats memory_stats(Device d) {
  if (d == Device::cpu) {
    Counter& c = host_counter();
    return MemoryStats{c.in_use.load(), static_cast<int64_t>(host_cache().cached()), c.peak.load()};
  }
#ifdef QWENLONG_HAVE_CUDA
  if (cuda_status().available) return cuda_allocator().stats();
#endif
  return MemoryStats{};
}

std::shared_ptr<Storage> Storage::allocate(Device device, size_t bytes) {
  void* p = nullptr;
  if (device == Device::cpu) {
    if (bytes > 0) {
      // Refuse what the machine cannot hold rather than let the kernel's overcommit kill the process later.
      static const size_t physical = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
      if (bytes > physical)
        throw_range("cannot allocate " + std::to_string(bytes) + " bytes of host memory: the machine has " + std::to_string(physical));
      if (kHostCache && bytes >= kLargeHost) {
        p = host_cache().allocate(HostCache::round(bytes));  // page-aligned
      } else {
        size_t rounded = (bytes + 63) / 64 * 64;
        p = std::aligned_alloc(64, rounded);
      }
      if (!p) throw_range("cannot allocate " + std::to_string(bytes) + " bytes of host memory");
      host_counter().add(static_cast<int64_t>(bytes));
    }
  } else {
    require_cuda("allocate");
#ifdef QWENLONG_HAVE_CUDA
    if (bytes > 0) p = cuda_allocator().allocate(bytes);
#endif
  }
  return std::shared_ptr<Storage>(new Storage(device, p, bytes));
}

Storage::~Storage() {
  if (!data_) return;
  if (device_ == Device::cpu) {
    if (kHostCache && bytes_ >= kLargeHost)
      host_cache().release(data_);
    else
      std::free(data_);
    host_counter().sub(static_cast<int64_t>(bytes_));
  } else {
#ifdef QWENLONG_HAVE_CUDA
    cuda_allocator().release(data_);
#endif
  }
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  require_cuda("copy");
#ifdef QWENLONG_HAVE_CUDA
  cudaStream_t s = compute_stream();
  cudaMemcpyKind kind = dst_device == Device::cpu   ? cudaMemcpyDeviceToHost
                        : src_device == Device::cpu ? cudaMemcpyHostToDevice
                                                    : cudaMemcpyDeviceToDevice;
  check_cuda(cudaMemcpyAsync(dst, src, bytes, kind, s), "copy");
  // Host memory may be released by JS as soon as we return: wait for copies that touch it.
  if (kind != cudaMemcpyDeviceToDevice) check_cuda(cudaStreamSynchronize(s), "copy");
#endif
}

void zero_bytes(void* dst, Device device, size_t bytes) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    std::memset(dst, 0, bytes);
    return;
  }
  require_cuda("zeros");
#ifdef QWENLONG_HAVE_CUDA
  check_cuda(cudaMemsetAsync(dst, 0, bytes, compute_stream()), "zeros");
#endif
}

static CudaStatus probe_cuda() {
  CudaStatus st;
#ifndef QWENLONG_HAVE_CUDA
  st.reason = "this binary was built without CUDA (no nvcc at build time, or QWENLONG_CUDA=off)";
  return st;
#else
  st.compiled = true;
  st.archs = QWENLONG_CUDA_ARCHS;
  cudaRuntimeGetVersion(&st.runtime_version);
  if (cudaDriverGetVersion(&st.driver_version) != cudaSuccess) st.driver_version = 0;
  cudaGetLastError();
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    st.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err) +
                (st.driver_version == 0 ? " (no NVIDIA driver found)" : "");
    return st;
  }
  if (count == 0) {
    st.reason = "no CUDA device found";
    return st;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    st.devices.push_back(CudaDeviceInfo{prop.name, static_cast<int64_t>(prop.totalGlobalMem),
                                        prop.multiProcessorCount, prop.major, prop.minor});
  }
  if (st.devices.empty()) {
    st.reason = "CUDA devices found but their properties could not be read";
    return st;
  }
  const CudaDeviceInfo& d0 = st.devices[0];
  // Real code exists for sm_80/86/89/90a and PTX for sm_90 (JIT-compiled on newer cards); older cards cannot run it.
  if (d0.major < 8) {
    st.reason = "device 0 (" + d0.name + ") is sm_" + std::to_string(d0.major * 10 + d0.minor) +
                "; this binary needs sm_80 or newer (compiled for " + st.archs + ")";
    return st;
  }
  err = cudaSetDevice(0);
  if (err == cudaSuccess) err = cudaFree(nullptr);  // creates the context
  if (err != cudaSuccess) {
    cudaGetLastError();
    st.reason = std::string("CUDA context creation failed: ") + cudaGetErrorString(err);
    return st;
  }
  st.available = true;
  st.reason = "CUDA device 0: " + d0.name + " (sm_" + std::to_string(d0.major * 10 + d0.minor) + ")";
  return st;
#endif
}

const CudaStatus& cuda_status() {
  static CudaStatus st = probe_cuda();
  return st;
}

void require_cuda(const char* what) {
  const CudaStatus& st = cuda_status();
  if (!st.available) throw_runtime(std::string(what) + ": CUDA is not available: " + st.reason);
}

void cuda_synchronize(const char* what) {
  require_cuda(what);
#ifdef QWENLONG_HAVE_CUDA
  check_cuda(cudaStreamSynchronize(compute_stream()), what);
#endif
}

void host_empty_cache() { host_cache().release_all(); }

void cuda_empty_cache() {
#ifdef QWENLONG_HAVE_CUDA
  if (cuda_status().available) cuda_allocator().empty_cache();
#endif
}

}  // namespace qwenlong
