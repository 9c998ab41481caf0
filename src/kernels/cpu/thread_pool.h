// A small persistent thread pool for the CPU kernels. Workers spin briefly after a job (decode
// issues ~150 matrix products per token back to back) and then sleep on a condition variable, so an
// idle or oversubscribed machine is not burned by spinning (OpenMP's default active wait made
// 2-thread decode ~40x slower than 1 thread on our shared 2-core CI box).
#pragma once
#include <cstdint>
#include <type_traits>

namespace edgellm::kernels::cpu {

// Runs fn(ctx, item, thread_index) for every item in [0, n_items) on up to n_threads threads; the
// calling thread takes part as thread_index 0, workers are 1..n_threads-1. Items are handed out
// dynamically. Calls from different threads are serialized; fn must not call parallel_for.
void parallel_for(int n_threads, int64_t n_items, void (*fn)(void* ctx, int64_t item, int thread_index), void* ctx);

// Convenience wrapper for lambdas: f(item, thread_index).
template <class F>
void parallel_for(int n_threads, int64_t n_items, F&& f) {
    parallel_for(
        n_threads, n_items,
        [](void* c, int64_t item, int ti) { (*static_cast<std::remove_reference_t<F>*>(c))(item, ti); },
        const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace edgellm::kernels::cpu
