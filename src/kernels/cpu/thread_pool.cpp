// Persistent worker threads behind cpu::parallel_for: a generation counter announces each job,
// workers spin ~100 us before sleeping, items are claimed with an atomic counter, and each job
// waits for an acknowledgement from every worker.
#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define EDGELLM_CPU_RELAX() _mm_pause()
#else
#define EDGELLM_CPU_RELAX() std::this_thread::yield()
#endif

namespace edgellm::kernels::cpu {
namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto k_spin_time = std::chrono::microseconds(100);

// Spins until pred() or the spin window ends; returns pred().
template <class P>
bool spin_until(P pred) {
    const auto end = clock_type::now() + k_spin_time;
    for (int i = 0;; ++i) {
        if (pred()) return true;
        EDGELLM_CPU_RELAX();
        if ((i & 63) == 63 && clock_type::now() > end) return pred();
    }
}

class pool {
public:
    ~pool() {
        {
            std::lock_guard lk(mu_);
            stop_.store(true);
            generation_.fetch_add(1);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    void run(int n_threads, int64_t n_items, void (*fn)(void*, int64_t, int), void* ctx) {
        std::lock_guard run_lock(run_mu_);
        const int n_workers = n_threads - 1;
        while (int(workers_.size()) < n_workers) {
            const int index = int(workers_.size()) + 1;
            const uint64_t current = generation_.load();
            workers_.emplace_back([this, index, current] { worker_loop(index, current); });
        }
        fn_ = fn;
        ctx_ = ctx;
        n_items_ = n_items;
        n_participants_ = n_workers;
        next_item_.store(0);
        // Every worker acknowledges every job (idle ones without working), so no worker can still
        // be reading this job's fields when the next job overwrites them.
        pending_.store(int(workers_.size()));
        {
            std::lock_guard lk(mu_);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        work(0);
        if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
            std::unique_lock lk(mu_);
            done_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
        }
    }

private:
    void work(int index) {
        for (int64_t it; (it = next_item_.fetch_add(1, std::memory_order_relaxed)) < n_items_;) fn_(ctx_, it, index);
    }

    void worker_loop(int index, uint64_t seen) {
        for (;;) {
            if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
                std::unique_lock lk(mu_);
                wake_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            }
            seen = generation_.load(std::memory_order_acquire);
            if (stop_.load()) return;
            if (index <= n_participants_) work(index);
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard lk(mu_);
                done_.notify_one();
            }
        }
    }

    std::mutex run_mu_;  // one job at a time
    std::mutex mu_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> workers_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int64_t> next_item_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    void (*fn_)(void*, int64_t, int) = nullptr;
    void* ctx_ = nullptr;
    int64_t n_items_ = 0;
    int n_participants_ = 0;
};

pool& instance() {
    static pool p;
    return p;
}

}  // namespace

void parallel_for(int n_threads, int64_t n_items, void (*fn)(void* ctx, int64_t item, int thread_index), void* ctx) {
    if (n_items <= 0) return;
    if (n_threads <= 1 || n_items == 1) {
        for (int64_t i = 0; i < n_items; ++i) fn(ctx, i, 0);
        return;
    }
    instance().run(n_threads, n_items, fn, ctx);
}

}  // namespace edgellm::kernels::cpu
