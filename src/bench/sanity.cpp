// The benchmark's sanity rules (see sanity.h and docs/bench.md "Sanity checks").
#include "bench/sanity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace edgellm::bench {

namespace {

std::string run_name(const run_sample& s) { return fmt::format("run {} ({})", s.run_index, s.prompt_id); }

// One run's figure of a metric, by metric name.
double metric_value(const run_sample& s, const std::string& metric) {
    if (metric == metric_ttft) return s.ttft_ms;
    if (metric == metric_prefill) return s.prefill_tokens_per_s;
    if (metric == metric_decode) return s.decode_tokens_per_s;
    if (metric == metric_latency) return s.latency_ms;
    return std::nan("");
}

// "+35%": how far `other` is from `ours`, in percent of ours.
double diff_pct(double ours, double other) { return 100.0 * (other - ours) / ours; }

}  // namespace

sanity_limits limits_of(const bench_report& r) {
    sanity_limits lim;
    lim.mem_bandwidth_bytes_per_s = r.system.mem_bandwidth_bytes_per_s;
    lim.gpu_present = !r.system.gpu.empty();
    lim.n_predict = r.settings.mode == "prompts" ? r.settings.n_predict : 0;
    return lim;
}

double decode_bound_tokens_per_s(uint64_t model_bytes, const sanity_limits& lim) {
    if (model_bytes == 0 || lim.gpu_present || !(lim.mem_bandwidth_bytes_per_s > 0)) return std::nan("");
    return lim.bandwidth_factor * lim.mem_bandwidth_bytes_per_s / static_cast<double>(model_bytes);
}

std::vector<sanity_finding> check_sample(const run_sample& s, const sanity_limits& lim) {
    std::vector<sanity_finding> out;
    if (!s.error.empty()) return out;
    auto invalid = [&](const char* metric, std::string reason) { out.push_back({metric, std::move(reason), true}); };
    auto warn = [&](const char* metric, std::string reason) { out.push_back({metric, std::move(reason), false}); };

    // Durations: a measured time of zero or less is a clock or bookkeeping error.
    if (std::isfinite(s.ttft_ms) && s.ttft_ms <= 0) invalid(metric_ttft, fmt::format("TTFT {:.3f} ms is not positive", s.ttft_ms));
    if (std::isfinite(s.latency_ms) && s.latency_ms <= 0)
        invalid(metric_latency, fmt::format("latency {:.3f} ms is not positive", s.latency_ms));
    if (std::isfinite(s.ttft_ms) && std::isfinite(s.latency_ms) && s.latency_ms > 0 && s.ttft_ms > s.latency_ms)
        invalid(metric_ttft, fmt::format("TTFT {:.1f} ms is after the last token ({:.1f} ms)", s.ttft_ms, s.latency_ms));
    for (const char* m : {metric_prefill, metric_decode}) {
        double v = m == metric_prefill ? s.prefill_tokens_per_s : s.decode_tokens_per_s;
        if (std::isinf(v)) invalid(m, "infinite speed (a zero duration)");
        else if (std::isfinite(v) && v <= 0) invalid(m, fmt::format("speed {:.3f} tok/s is not positive", v));
    }

    // Decode speed needs at least two tokens: the interval between the first and the last.
    if (std::isfinite(s.decode_tokens_per_s) && s.n_gen_tokens < 2)
        invalid(metric_decode, fmt::format("{} token(s) generated: there is no decode interval", s.n_gen_tokens));

    // Every decoded token reads all weights once: the speed cannot beat memory bandwidth by much.
    const double bound = decode_bound_tokens_per_s(s.model_bytes, lim);
    if (std::isfinite(bound) && std::isfinite(s.decode_tokens_per_s) && s.decode_tokens_per_s > bound)
        invalid(metric_decode,
                fmt::format("{:.1f} tok/s is above the physical bound {:.1f} tok/s ({:g}x {:.1f} GB/s memory bandwidth "
                            "/ {:.1f} MB model)",
                            s.decode_tokens_per_s, bound, lim.bandwidth_factor, lim.mem_bandwidth_bytes_per_s / 1e9,
                            static_cast<double>(s.model_bytes) / 1e6));

    // Token counts that contradict the stream.
    if (!s.n_gen_tokens_estimated && s.n_gen_pieces >= 0 && s.n_gen_pieces > s.n_gen_tokens) {
        std::string why = fmt::format("{} pieces of text were streamed but the backend counted {} tokens",
                                      s.n_gen_pieces, s.n_gen_tokens);
        invalid(metric_n_gen, why);
        if (std::isfinite(s.decode_tokens_per_s)) invalid(metric_decode, why);
    }
    if (lim.n_predict > 0 && s.n_gen_tokens > lim.n_predict) {
        std::string why = fmt::format("{} tokens generated, more than the {} asked for", s.n_gen_tokens, lim.n_predict);
        invalid(metric_n_gen, why);
        if (std::isfinite(s.decode_tokens_per_s)) invalid(metric_decode, why);
    }
    if (s.n_gen_tokens < 0) invalid(metric_n_gen, fmt::format("negative token count {}", s.n_gen_tokens));

    // The server's own timings are an extra; say where they disagree with edgellm's clock.
    auto compare = [&](const char* metric, double ours, const std::optional<double>& server) {
        if (!server || !std::isfinite(*server) || !std::isfinite(ours) || ours <= 0) return;
        double d = diff_pct(ours, *server);
        if (std::fabs(d) > lim.server_disagreement_pct)
            warn(metric, fmt::format("server reports {:.1f} tok/s, edgellm's clock {:.1f} tok/s ({:+.0f}%)", *server, ours, d));
    };
    compare(metric_prefill, s.prefill_tokens_per_s, s.server_prefill_tokens_per_s);
    compare(metric_decode, s.decode_tokens_per_s, s.server_decode_tokens_per_s);
    return out;
}

std::vector<group_summary> checked_groups(const bench_report& r) {
    auto groups = summarize_groups(r.samples);
    const sanity_limits lim = limits_of(r);
    for (auto& g : groups) {
        // Per metric: the first invalid run's reason, and how many runs were invalid.
        std::map<std::string, std::pair<std::string, int>> bad;
        std::map<std::string, std::pair<std::string, int>> warned;
        for (const auto& s : r.samples) {
            if (s.backend != g.backend || s.model != g.model) continue;
            std::vector<std::string> counted;  // a run counts once per metric, whatever its findings
            for (const auto& f : check_sample(s, lim)) {
                auto& slot = (f.invalid ? bad : warned)[f.metric];
                const std::string key = (f.invalid ? "!" : "?") + f.metric;
                if (std::find(counted.begin(), counted.end(), key) != counted.end()) continue;
                counted.push_back(key);
                if (slot.second++ == 0) slot.first = run_name(s) + ": " + f.reason;
            }
        }
        auto with_count = [&](const std::pair<std::string, int>& p) {
            return p.second > 1 ? fmt::format("{} (and {} more run(s))", p.first, p.second - 1) : p.first;
        };
        for (const auto& [metric, p] : bad) g.invalid[metric] = with_count(p);
        for (const auto& [metric, p] : warned) g.warnings.push_back(metric + ": " + with_count(p));
        // A spread larger than the mean over the repeated runs of one prompt: they do not
        // measure one thing. (Across prompts of different lengths TTFT and latency may differ
        // by far more, legitimately.)
        std::vector<std::string> prompts;
        for (const auto& s : r.samples)
            if (s.backend == g.backend && s.model == g.model &&
                std::find(prompts.begin(), prompts.end(), s.prompt_id) == prompts.end())
                prompts.push_back(s.prompt_id);
        for (const char* metric : {metric_ttft, metric_prefill, metric_decode, metric_latency}) {
            if (g.invalid.count(metric)) continue;
            for (const auto& prompt : prompts) {
                std::vector<double> v;
                for (const auto& s : r.samples) {
                    if (s.backend != g.backend || s.model != g.model || s.prompt_id != prompt || !s.error.empty())
                        continue;
                    const double x = metric_value(s, metric);
                    if (std::isfinite(x)) v.push_back(x);
                }
                const summary sm = summarize(v);
                if (sm.n >= 2 && sm.std > sm.mean) {
                    g.invalid[metric] = fmt::format("prompt {}: std {:.1f} over {} runs is larger than the mean {:.1f}",
                                                    prompt, sm.std, sm.n, sm.mean);
                    break;
                }
            }
        }
    }
    return groups;
}

}  // namespace edgellm::bench
