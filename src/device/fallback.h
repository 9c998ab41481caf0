// Progressive fallback loading: capped memory pools whose allocations fail beyond a cap, and a
// generic driver that retries a load callback with full GPU -> fewer GPU layers -> CPU only ->
// smaller context, recording every attempt.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "device/memory_plan.h"

namespace edgellm::device {

// A request a memory pool refused; carries the numbers for the report.
class out_of_memory_error : public error {
  public:
    out_of_memory_error(const std::string& pool, const std::string& what, uint64_t requested_bytes,
                        uint64_t used_bytes, uint64_t cap_bytes);
    const std::string& pool() const { return pool_; }
    uint64_t requested_bytes() const { return requested_; }
    uint64_t used_bytes() const { return used_; }
    uint64_t cap_bytes() const { return cap_; }

  private:
    std::string pool_;
    uint64_t requested_, used_, cap_;
};

class memory_pool;

// Bytes held in a pool until destruction (move-only).
class reservation {
  public:
    reservation() = default;
    reservation(reservation&& o) noexcept : pool_(o.pool_), bytes_(o.bytes_) {
        o.pool_ = nullptr;
        o.bytes_ = 0;
    }
    reservation& operator=(reservation&& o) noexcept;
    reservation(const reservation&) = delete;
    reservation& operator=(const reservation&) = delete;
    ~reservation() { release(); }
    uint64_t bytes() const { return bytes_; }
    void release();

  private:
    friend class memory_pool;
    reservation(memory_pool* pool, uint64_t bytes) : pool_(pool), bytes_(bytes) {}
    memory_pool* pool_ = nullptr;
    uint64_t bytes_ = 0;
};

// Real host memory counted against a pool.
struct pool_buffer {
    reservation held;
    std::unique_ptr<uint8_t[]> data;
    uint64_t size_bytes = 0;
};

// Counts the bytes taken from one memory (a GPU, host RAM) and refuses requests that would go
// beyond its cap; without a cap it only counts. Thread-safe. Must outlive its reservations.
class memory_pool {
  public:
    explicit memory_pool(std::string name, std::optional<uint64_t> cap_bytes = std::nullopt)
        : name_(std::move(name)), cap_(cap_bytes) {}
    memory_pool(const memory_pool&) = delete;
    memory_pool& operator=(const memory_pool&) = delete;

    // Books n bytes without touching memory (for planning-sized simulations); `what` names the
    // request in the error ("KV cache"). Throws out_of_memory_error beyond the cap.
    reservation reserve(uint64_t n_bytes, const std::string& what = "allocation");
    // Allocates n real bytes (zeroed) booked against the cap; a failing operator new is also
    // reported as out_of_memory_error.
    pool_buffer allocate(uint64_t n_bytes, const std::string& what = "allocation");

    const std::string& name() const { return name_; }
    std::optional<uint64_t> cap_bytes() const { return cap_; }
    uint64_t used_bytes() const { return used_.load(); }
    uint64_t peak_bytes() const { return peak_.load(); }

  private:
    friend class reservation;
    void give_back(uint64_t n_bytes) { used_.fetch_sub(n_bytes); }

    std::string name_;
    std::optional<uint64_t> cap_;
    std::atomic<uint64_t> used_{0};
    std::atomic<uint64_t> peak_{0};
};

struct load_choice {
    int n_gpu_layers = 0;
    int64_t n_ctx = 0;
};

struct load_attempt {
    std::string stage;  // "full GPU", "fewer GPU layers", "CPU only", "smaller context"
    load_choice choice;
    bool ok = false;
    std::string failure;  // the error message when !ok
};

struct fallback_report {
    load_choice final_choice;
    std::vector<load_attempt> attempts;
    // "attempt 1 full GPU (22/22 layers, ctx 4096): failed: ...; ... final: 11/22 layers, ctx 4096"
    std::string summary(int n_layer) const;
};

struct fallback_options {
    int n_layer = 0;
    int64_t n_ctx = 4096;
    int64_t min_ctx = 256;
    bool has_gpu = true;
    int start_gpu_layers =
        -1;  // -1: every layer; otherwise where "full GPU" starts (a plan's choice)
    // Called after each attempt (progress output).
    std::function<void(const load_attempt&)> on_attempt;
};

// The choices tried, in order, with their stage names.
std::vector<load_attempt> fallback_sequence(const fallback_options& opts);

// Runs try_load on each choice of fallback_sequence until one returns normally. Only
// out_of_memory_error moves on to the next choice; any other error propagates at once. When
// every choice fails, throws usage_error listing every attempt and its numbers.
fallback_report load_with_fallback(const fallback_options& opts,
                                   const std::function<void(const load_choice&)>& try_load);

// Books in the pools what `choice` needs by estimate_usage (weights, KV cache, scratch; GPU
// parts in `gpu`, host parts in `host`; pass the same pool twice for unified memory). The
// returned reservations hold the bytes; throws out_of_memory_error when a pool refuses.
std::vector<reservation> simulate_load(const model_memory_facts& m, const load_choice& choice,
                                       int64_t n_batch, memory_pool& gpu, memory_pool& host);

}  // namespace edgellm::device
