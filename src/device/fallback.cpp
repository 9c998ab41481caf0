// Capped memory pools and the progressive fallback driver (see fallback.h).
#include "device/fallback.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "core/units.h"

namespace edgellm::device {

out_of_memory_error::out_of_memory_error(const std::string& pool, const std::string& what,
                                         uint64_t requested_bytes, uint64_t used_bytes,
                                         uint64_t cap_bytes)
    : error(fmt::format("{}: cannot take {} for {} ({} in use, cap {})", pool,
                        format_bytes(requested_bytes), what, format_bytes(used_bytes),
                        format_bytes(cap_bytes))),
      pool_(pool),
      requested_(requested_bytes),
      used_(used_bytes),
      cap_(cap_bytes) {}

reservation& reservation::operator=(reservation&& o) noexcept {
    if (this != &o) {
        release();
        pool_ = o.pool_;
        bytes_ = o.bytes_;
        o.pool_ = nullptr;
        o.bytes_ = 0;
    }
    return *this;
}

void reservation::release() {
    if (pool_ && bytes_) pool_->give_back(bytes_);
    pool_ = nullptr;
    bytes_ = 0;
}

reservation memory_pool::reserve(uint64_t n_bytes, const std::string& what) {
    uint64_t used = used_.load();
    for (;;) {
        if (cap_ && (n_bytes > *cap_ || used > *cap_ - n_bytes))
            throw out_of_memory_error(name_, what, n_bytes, used, *cap_);
        if (used_.compare_exchange_weak(used, used + n_bytes)) break;
    }
    uint64_t now = used + n_bytes;
    uint64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return reservation(this, n_bytes);
}

pool_buffer memory_pool::allocate(uint64_t n_bytes, const std::string& what) {
    pool_buffer b;
    b.held = reserve(n_bytes, what);
    try {
        b.data.reset(new uint8_t[n_bytes]);
    } catch (const std::bad_alloc&) {
        throw out_of_memory_error(name_, what + " (operator new failed)", n_bytes,
                                  used_bytes() - n_bytes, cap_.value_or(0));
    }
    std::memset(b.data.get(), 0, n_bytes);
    b.size_bytes = n_bytes;
    return b;
}

std::vector<load_attempt> fallback_sequence(const fallback_options& opts) {
    std::vector<load_attempt> seq;
    auto add = [&](const char* stage, int ngl, int64_t ctx) {
        for (const auto& a : seq)
            if (a.choice.n_gpu_layers == ngl && a.choice.n_ctx == ctx) return;
        seq.push_back({stage, {ngl, ctx}, false, {}});
    };
    const int64_t ctx = std::max<int64_t>(opts.n_ctx, 1);
    if (opts.has_gpu && opts.n_layer > 0) {
        const int start = opts.start_gpu_layers < 0 ? opts.n_layer
                                                    : std::min(opts.start_gpu_layers, opts.n_layer);
        if (start > 0) {
            add("full GPU", start, ctx);
            for (int quarters : {3, 2, 1}) {
                int ngl = start * quarters / 4;
                if (ngl > 0 && ngl < start) add("fewer GPU layers", ngl, ctx);
            }
        }
    }
    add("CPU only", 0, ctx);
    const int64_t min_ctx = std::min(std::max<int64_t>(opts.min_ctx, 1), ctx);
    for (int64_t c = ctx / 2; c > min_ctx; c /= 2) add("smaller context", 0, c);
    if (min_ctx < ctx) add("smaller context", 0, min_ctx);
    return seq;
}

std::string fallback_report::summary(int n_layer) const {
    std::string s;
    for (size_t i = 0; i < attempts.size(); ++i) {
        const auto& a = attempts[i];
        s += fmt::format("attempt {} {} ({}/{} layers on GPU, ctx {}): {}\n", i + 1, a.stage,
                         a.choice.n_gpu_layers, n_layer, a.choice.n_ctx,
                         a.ok ? "ok" : "failed: " + a.failure);
    }
    s += fmt::format("final: {}/{} layers on GPU, ctx {}", final_choice.n_gpu_layers, n_layer,
                     final_choice.n_ctx);
    return s;
}

fallback_report load_with_fallback(const fallback_options& opts,
                                   const std::function<void(const load_choice&)>& try_load) {
    fallback_report report;
    for (auto attempt : fallback_sequence(opts)) {
        try {
            try_load(attempt.choice);
            attempt.ok = true;
        } catch (const out_of_memory_error& e) {
            attempt.failure = e.what();
        }
        report.attempts.push_back(attempt);
        if (opts.on_attempt) opts.on_attempt(attempt);
        if (attempt.ok) {
            report.final_choice = attempt.choice;
            return report;
        }
    }
    std::string msg =
        fmt::format("the model could not be loaded in any configuration ({} attempts):",
                    report.attempts.size());
    for (const auto& a : report.attempts)
        msg += fmt::format("\n  {} ({}/{} layers on GPU, ctx {}): {}", a.stage,
                           a.choice.n_gpu_layers, opts.n_layer, a.choice.n_ctx, a.failure);
    throw usage_error(msg);
}

std::vector<reservation> simulate_load(const model_memory_facts& m, const load_choice& choice,
                                       int64_t n_batch, memory_pool& gpu, memory_pool& host) {
    memory_usage u = estimate_usage(m, choice.n_gpu_layers, choice.n_ctx, n_batch);
    std::vector<reservation> held;
    auto take = [&](memory_pool& pool, uint64_t n, const char* what) {
        if (n > 0) held.push_back(pool.reserve(n, what));
    };
    take(gpu, u.gpu_weight_bytes, "GPU weights");
    take(gpu, u.gpu_kv_bytes, "GPU KV cache");
    take(gpu, u.gpu_scratch_bytes, "GPU scratch");
    take(host, u.host_weight_bytes, "host weights");
    take(host, u.host_kv_bytes, "host KV cache");
    take(host, u.host_scratch_bytes, "host scratch");
    return held;
}

}  // namespace edgellm::device
