// Summary statistics of benchmark samples: mean, sample standard deviation, min/max,
// percentiles, per backend/model groups and the fastest/slowest comparison between groups.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "bench/result.h"

namespace edgellm::bench {

// Summary of a list of values. With no values every number is NaN (reporters print "-").
struct summary {
    size_t n = 0;
    double mean = 0.0;
    double std = 0.0;  // sample standard deviation (divides by n-1); 0 when n == 1
    double min = 0.0;
    double max = 0.0;
    double p50 = 0.0;
    double p95 = 0.0;
};

// Percentile p in [0, 100] with linear interpolation between closest ranks, the same as
// numpy.percentile's default ("linear"): rank = p/100 * (n-1), interpolated between the two
// sorted values around it. NaN for an empty list; throws usage_error when p is out of range.
double percentile(std::span<const double> values, double p);

summary summarize(std::span<const double> values);

// Statistics of the successful runs of one (backend, model) pair.
struct group_summary {
    std::string backend;
    std::string model;
    size_t n_runs = 0;    // successful runs
    size_t n_failed = 0;  // runs with an error
    summary ttft_ms;
    summary prefill_tokens_per_s;
    summary decode_tokens_per_s;
    summary server_prefill_tokens_per_s;  // what the server reported, over the runs it did
    summary server_decode_tokens_per_s;
    summary latency_ms;
    summary n_gen_tokens;
    summary peak_rss_bytes;
    summary gpu_mem_bytes;
    summary cpu_pct;
    summary gpu_util_pct;
    summary energy_j_per_token;  // over the runs that measured it
    summary draft_acceptance;    // over the runs with a draft model
    // Filled by bench/sanity.h checked_groups(): metric name -> why its figure is not to be
    // believed (never ranked best), and warnings (server vs. edgellm clock disagreement).
    std::map<std::string, std::string> invalid;
    std::vector<std::string> warnings;
    std::string label() const;  // "backend / model"
};

// One group per (backend, model) in order of first appearance; failed runs are only counted.
std::vector<group_summary> summarize_groups(const std::vector<run_sample>& samples);

// Best and worst group by one metric's mean (groups whose metric is invalid are skipped), and how many times better the best is.
struct extremes {
    std::string metric;
    std::string best;  // group label
    std::string worst;
    double best_value = 0.0;
    double worst_value = 0.0;
    // worst/best when lower is better (latency, memory), best/worst when higher is better
    // (tokens/s); always >= 1. NaN when fewer than two groups have a value.
    double ratio = 0.0;
};

extremes find_extremes(const std::vector<group_summary>& groups, const std::string& metric,
                       const std::function<const summary&(const group_summary&)>& pick,
                       bool higher_is_better);

// The comparisons every report prints: latency, TTFT, decode and prefill tokens/s, peak RSS.
std::vector<extremes> standard_extremes(const std::vector<group_summary>& groups);

// Summary of a micro test's tokens/s repetitions, and of a sweep point's latencies.
summary summarize(const micro_result& m);
summary summarize(const sweep_point& p);

}  // namespace edgellm::bench
