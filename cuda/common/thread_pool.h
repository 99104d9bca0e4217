// The CPU backend's thread pool. Ops split their work into a fixed number of tasks that depends only on the
// problem size and the pool size, and every task writes its own outputs (reductions merge per-task partials in
// task order), so results are bitwise identical from run to run for a fixed thread count, whichever worker runs
// which task.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qwenlong {

class ThreadPool {
 public:
  // Threads: QWENLONG_THREADS if set, else the hardware's.
  static ThreadPool& instance();

  int size() const { return num_threads_; }
  // Resize the pool (the calling thread counts as one); waits for a running parallel_for to finish.
  void resize(int threads);

  // Run fn(task) for task in [0, tasks). Blocks until all are done; the calling thread works too. Safe to call from
  // several threads: their jobs run one after another. A task that calls parallel_for runs the inner job inline.
  // An exception thrown by a task is rethrown here (the first one) after all tasks stop.
  void parallel_for(int64_t tasks, const std::function<void(int64_t)>& fn);

  ~ThreadPool();

 private:
  explicit ThreadPool(int threads);
  void start(int threads);
  void stop();
  void worker_loop(int index, uint64_t seen);
  void run_tasks();

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  // Bumped under mu_ for each job (and to stop); atomic so that idle workers can watch it without the lock first.
  std::atomic<uint64_t> generation_{0};
  static constexpr int64_t kSpinMicros = 100;  // how long an idle worker watches before it sleeps
  bool stopping_ = false;
  // State of the current job.
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> busy_workers_{0};
  std::exception_ptr error_;
  std::mutex error_mu_;
  std::mutex run_mu_;  // held by the thread whose job the pool runs
};

// Split [0, n) into `parts` contiguous ranges of nearly equal length; returns the range of `part`.
inline void split_range(int64_t n, int64_t parts, int64_t part, int64_t* begin, int64_t* end) {
  int64_t base = n / parts, extra = n % parts;
  *begin = part * base + (part < extra ? part : extra);
  *end = *begin + base + (part < extra ? 1 : 0);
}

}  // namespace qwenlong
