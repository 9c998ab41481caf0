// Compares two benchmark reports (A = baseline, B = candidate) metric by metric, with ratios,
// and flags regressions beyond a threshold (`edgellm bench --compare A.json B.json`).
#pragma once
#include <string>
#include <vector>

#include "bench/result.h"

namespace edgellm::bench {

struct compare_row {
    std::string item;    // "native / m.gguf", "native / m.gguf pp512 t4 b512 ngl0", "... batch 4"
    std::string metric;  // "latency_ms", "decode_tokens_per_s", ...
    double a = 0.0;      // baseline mean
    double b = 0.0;      // candidate mean
    double ratio = 0.0;       // b / a (NaN when a is 0 or either side is missing)
    double change_pct = 0.0;  // (b - a) / a * 100
    bool higher_is_better = false;
    bool regression = false;   // B worse than A by more than the threshold
    bool improvement = false;  // B better than A by more than the threshold
};

struct compare_result {
    double threshold_pct = 5.0;
    std::vector<compare_row> rows;
    std::vector<std::string> only_in_a;  // items the candidate did not measure
    std::vector<std::string> only_in_b;
    size_t n_regressions() const;
};

// Matches backend/model groups, micro tests (same test and parameters) and sweep points (same
// kind and size) and compares their means. threshold_pct must be >= 0.
compare_result compare(const bench_report& a, const bench_report& b, double threshold_pct = 5.0);

// Side-by-side table (console or Markdown) with a verdict line.
std::string render_compare(const compare_result& c, bool markdown = false);

}  // namespace edgellm::bench
