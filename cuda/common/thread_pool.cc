#include "cuda/common/thread_pool.h"

#include <chrono>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QWENLONG_PAUSE() _mm_pause()
#else
#define QWENLONG_PAUSE() ((void)0)
#endif

namespace qwenlong {

// QWENLONG_SPIN_US: how long an idle worker watches for the next job before it sleeps (0: sleep at once).
static int64_t spin_from_env(int64_t fallback) {
  const char* env = std::getenv("QWENLONG_SPIN_US");
  if (env && *env) {
    char* end = nullptr;
    long long us = std::strtoll(env, &end, 10);
    if (end && *end == '\0' && us >= 0 && us <= 1000000) return us;
  }
  return fallback;
}

static int threads_from_env() {
  const char* env = std::getenv("QWENLONG_THREADS");
  if (env && *env) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end && *end == '\0' && n >= 1 && n <= 1024) return static_cast<int>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool& ThreadPool::instance() {
  static ThreadPool* pool = new ThreadPool(threads_from_env());  // never destroyed: workers may outlive statics
  return *pool;
}

ThreadPool::ThreadPool(int threads) { start(threads); }
ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int threads) {
  num_threads_ = threads < 1 ? 1 : threads;
  stopping_ = false;
  // New workers wait for the next job: they start from the current generation, not 0. (After a resize the
  // generation is not 0; a worker starting from 0 would wake at once with no job posted, and could then run part of
  // the next job and count itself done twice, leaving parallel_for waiting forever.)
  uint64_t current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current = generation_.load(std::memory_order_relaxed);
  }
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i, current] { worker_loop(i, current); });
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::resize(int threads) {
  std::lock_guard<std::mutex> run(run_mu_);
  if (threads == num_threads_) return;
  stop();
  start(threads);
}

// True on a thread while it runs tasks of a job: a parallel_for it calls then runs inline.
static thread_local bool t_in_job = false;

void ThreadPool::run_tasks() {
  t_in_job = true;
  for (;;) {
    int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= job_tasks_) break;
    try {
      (*job_)(task);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
      next_task_.store(job_tasks_, std::memory_order_relaxed);  // stop handing out work
    }
  }
  t_in_job = false;
}

void ThreadPool::worker_loop(int, uint64_t seen) {
  static const int64_t spin_us = spin_from_env(kSpinMicros);
  for (;;) {
    // Watch for the next job a little while before sleeping: a decode step runs a few hundred short jobs with
    // microseconds between them, and waking a sleeping thread cost about 18 us a job (a 1 x 1024 x 1024 bf16 product
    // 74 -> 55 us back to back; a Qwen3-0.6B-shaped bf16 decode step 75.5 -> 68-70 ms on 2 cores).
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
    for (int spins = 1; generation_.load(std::memory_order_acquire) == seen; ++spins) {
      QWENLONG_PAUSE();
      if (spins % 64 == 0 && std::chrono::steady_clock::now() >= until) break;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
      seen = generation_.load(std::memory_order_relaxed);
      if (stopping_) return;
    }
    run_tasks();
    busy_workers_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t tasks, const std::function<void(int64_t)>& fn) {
  if (tasks <= 0) return;
  // Small jobs and nested calls run inline.
  if (tasks == 1 || t_in_job) {
    for (int64_t t = 0; t < tasks; ++t) fn(t);
    return;
  }
  // Callers on different threads (the main thread and worker threads each loading the addon) take turns.
  std::lock_guard<std::mutex> run(run_mu_);
  if (num_threads_ == 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t);
    return;
  }
  error_ = nullptr;
  job_ = &fn;
  job_tasks_ = tasks;
  next_task_.store(0, std::memory_order_relaxed);
  busy_workers_.store(num_threads_ - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_tasks();
  // Workers finish their last task; spin briefly, then yield.
  for (int spins = 0; busy_workers_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins > 2000) std::this_thread::yield();
  }
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace qwenlong
