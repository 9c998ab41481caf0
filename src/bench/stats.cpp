// Summary statistics of benchmark samples (see stats.h for the definitions used).
#include "bench/stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace edgellm::bench {

namespace {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();

double percentile_sorted(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) return nan_v;
    double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(rank));
    size_t hi = std::min(lo + 1, sorted.size() - 1);
    double frac = rank - static_cast<double>(lo);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

}  // namespace

double percentile(std::span<const double> values, double p) {
    if (!(p >= 0.0 && p <= 100.0)) throw usage_error(fmt::format("percentile {} is outside [0, 100]", p));
    std::vector<double> sorted(values.begin(), values.end());
    std::sort(sorted.begin(), sorted.end());
    return percentile_sorted(sorted, p);
}

summary summarize(std::span<const double> values) {
    summary s;
    s.n = values.size();
    if (values.empty()) {
        s.mean = s.std = s.min = s.max = s.p50 = s.p95 = nan_v;
        return s;
    }
    std::vector<double> sorted(values.begin(), values.end());
    std::sort(sorted.begin(), sorted.end());
    double n = static_cast<double>(s.n);
    s.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / n;
    if (s.n > 1) {
        // Two-pass sum of squared deviations: stable for values far from zero.
        double ss = 0.0;
        for (double v : sorted) ss += (v - s.mean) * (v - s.mean);
        s.std = std::sqrt(ss / (n - 1.0));
    }
    s.min = sorted.front();
    s.max = sorted.back();
    s.p50 = percentile_sorted(sorted, 50.0);
    s.p95 = percentile_sorted(sorted, 95.0);
    return s;
}

std::string group_summary::label() const { return backend + " / " + model_label(model); }

std::vector<group_summary> summarize_groups(const std::vector<run_sample>& samples) {
    // Keys in order of first appearance so reports list backends as the user named them.
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& s : samples) {
        auto key = std::make_pair(s.backend, s.model);
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
    std::vector<group_summary> out;
    for (const auto& [backend, model] : keys) {
        group_summary g;
        g.backend = backend;
        g.model = model;
        std::vector<double> ttft, prefill, decode, server_prefill, server_decode, latency, n_gen, rss, gpu_mem, cpu, gpu_util, energy, draft;
        for (const auto& s : samples) {
            if (s.backend != backend || s.model != model) continue;
            if (!s.error.empty()) {
                ++g.n_failed;
                continue;
            }
            ++g.n_runs;
            // A metric a backend could not measure is NaN (or 0 bytes of memory): it is left out
            // of that metric's summary instead of dragging the mean to zero.
            auto add = [](std::vector<double>& v, double x) {
                if (std::isfinite(x)) v.push_back(x);
            };
            add(ttft, s.ttft_ms);
            add(prefill, s.prefill_tokens_per_s);
            add(decode, s.decode_tokens_per_s);
            if (s.server_prefill_tokens_per_s) add(server_prefill, *s.server_prefill_tokens_per_s);
            if (s.server_decode_tokens_per_s) add(server_decode, *s.server_decode_tokens_per_s);
            add(latency, s.latency_ms);
            n_gen.push_back(s.n_gen_tokens);
            if (s.peak_rss_bytes > 0) rss.push_back(static_cast<double>(s.peak_rss_bytes));
            gpu_mem.push_back(static_cast<double>(s.gpu_mem_bytes));
            add(cpu, s.cpu_pct);
            add(gpu_util, s.gpu_util_pct);
            if (s.energy_j_per_token) energy.push_back(*s.energy_j_per_token);
            if (s.draft_acceptance) draft.push_back(*s.draft_acceptance);
        }
        g.ttft_ms = summarize(ttft);
        g.prefill_tokens_per_s = summarize(prefill);
        g.decode_tokens_per_s = summarize(decode);
        g.server_prefill_tokens_per_s = summarize(server_prefill);
        g.server_decode_tokens_per_s = summarize(server_decode);
        g.latency_ms = summarize(latency);
        g.n_gen_tokens = summarize(n_gen);
        g.peak_rss_bytes = summarize(rss);
        g.gpu_mem_bytes = summarize(gpu_mem);
        g.cpu_pct = summarize(cpu);
        g.gpu_util_pct = summarize(gpu_util);
        g.energy_j_per_token = summarize(energy);
        g.draft_acceptance = summarize(draft);
        out.push_back(std::move(g));
    }
    return out;
}

extremes find_extremes(const std::vector<group_summary>& groups, const std::string& metric,
                       const std::function<const summary&(const group_summary&)>& pick,
                       bool higher_is_better) {
    extremes e;
    e.metric = metric;
    e.best_value = e.worst_value = e.ratio = nan_v;
    size_t n_valid = 0;
    for (const auto& g : groups) {
        double v = pick(g).mean;
        if (pick(g).n == 0 || std::isnan(v) || g.invalid.count(metric)) continue;
        ++n_valid;
        bool better = higher_is_better ? v > e.best_value : v < e.best_value;
        bool worse = higher_is_better ? v < e.worst_value : v > e.worst_value;
        if (n_valid == 1 || better) {
            e.best = g.label();
            e.best_value = v;
        }
        if (n_valid == 1 || worse) {
            e.worst = g.label();
            e.worst_value = v;
        }
    }
    if (n_valid >= 2) {
        double num = higher_is_better ? e.best_value : e.worst_value;
        double den = higher_is_better ? e.worst_value : e.best_value;
        e.ratio = den > 0.0 ? num / den : std::numeric_limits<double>::infinity();
    }
    return e;
}

std::vector<extremes> standard_extremes(const std::vector<group_summary>& groups) {
    return {
        find_extremes(groups, "latency_ms", [](const group_summary& g) -> const summary& { return g.latency_ms; }, false),
        find_extremes(groups, "ttft_ms", [](const group_summary& g) -> const summary& { return g.ttft_ms; }, false),
        find_extremes(groups, "decode_tokens_per_s",
                      [](const group_summary& g) -> const summary& { return g.decode_tokens_per_s; }, true),
        find_extremes(groups, "prefill_tokens_per_s",
                      [](const group_summary& g) -> const summary& { return g.prefill_tokens_per_s; }, true),
        find_extremes(groups, "peak_rss_bytes",
                      [](const group_summary& g) -> const summary& { return g.peak_rss_bytes; }, false),
    };
}

summary summarize(const micro_result& m) { return summarize(std::span<const double>(m.tokens_per_s)); }

summary summarize(const sweep_point& p) { return summarize(std::span<const double>(p.latency_ms)); }

}  // namespace edgellm::bench
