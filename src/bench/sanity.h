// The benchmark's sanity rules, in one place: which measured figures are impossible or
// meaningless (a decode speed above what memory bandwidth allows, one generated token, zero
// durations, a spread larger than the mean, token counts that contradict the stream), and
// where edgellm's clock and a server's own timings disagree. Reporters consume its verdicts.
#pragma once
#include <string>
#include <vector>

#include "bench/result.h"
#include "bench/stats.h"

namespace edgellm::bench {

// Metric names used in verdicts (the same as the JSON field names).
inline constexpr const char* metric_ttft = "ttft_ms";
inline constexpr const char* metric_prefill = "prefill_tokens_per_s";
inline constexpr const char* metric_decode = "decode_tokens_per_s";
inline constexpr const char* metric_latency = "latency_ms";
inline constexpr const char* metric_n_gen = "n_gen_tokens";

struct sanity_limits {
    // Measured main-memory read bandwidth; 0 = not measured (the bandwidth rule is skipped).
    double mem_bandwidth_bytes_per_s = 0;
    // Generating one token reads every weight once, so decode tok/s <= bandwidth / weight
    // bytes. Caches (a small model fits in L2/L3) and file size vs. weights make the bound
    // loose, hence a generous factor: only physically impossible figures are caught.
    double bandwidth_factor = 10.0;
    // A GPU reads weights from its own, much faster memory, which is not measured: the
    // bandwidth rule is skipped when the system has one.
    bool gpu_present = false;
    int n_predict = 0;  // tokens asked for; 0 = unknown
    // Server-reported vs. edgellm-clock speeds that differ by more than this are reported.
    double server_disagreement_pct = 20.0;
};

sanity_limits limits_of(const bench_report& r);

// The decode tok/s bound for a model of `model_bytes`; NaN when the rule does not apply.
double decode_bound_tokens_per_s(uint64_t model_bytes, const sanity_limits& lim);

// One verdict on one figure of a run: `invalid` figures are not to be believed (never ranked);
// the others are warnings the report shows next to the figure.
struct sanity_finding {
    std::string metric;
    std::string reason;
    bool invalid = true;
};

// Verdicts on one successful run (a failed run has none: its figures are not used at all).
std::vector<sanity_finding> check_sample(const run_sample& s, const sanity_limits& lim);

// summarize_groups() with every group's `invalid` and `warnings` filled from the rules: a
// metric is invalid for the group when any run's figure is, or when over the repeated runs of
// one prompt its std exceeds its mean.
std::vector<group_summary> checked_groups(const bench_report& r);

}  // namespace edgellm::bench
