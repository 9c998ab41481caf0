// Side-by-side comparison of two benchmark reports with regression flags.
#include "bench/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "bench/report_text.h"
#include "bench/stats.h"
#include "core/error.h"

namespace edgellm::bench {

namespace {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();

struct metric_value {
    std::string metric;
    double value;
    bool higher_is_better;
};

// item -> metrics, in the order items first appear.
using metric_table = std::vector<std::pair<std::string, std::vector<metric_value>>>;

metric_table collect(const bench_report& r) {
    metric_table t;
    for (const auto& g : summarize_groups(r.samples)) {
        if (g.n_runs == 0) continue;
        t.push_back({g.label(),
                     {{"latency_ms", g.latency_ms.mean, false},
                      {"ttft_ms", g.ttft_ms.mean, false},
                      {"prefill_tokens_per_s", g.prefill_tokens_per_s.mean, true},
                      {"decode_tokens_per_s", g.decode_tokens_per_s.mean, true},
                      {"peak_rss_bytes", g.peak_rss_bytes.mean, false}}});
    }
    for (const auto& m : r.micro) {
        if (!m.error.empty() || m.tokens_per_s.empty()) continue;
        std::string item = fmt::format("{} / {} {} t{} b{} ngl{}", m.backend, model_label(m.model), micro_test_name(m), m.n_threads,
                                       m.n_batch, m.n_gpu_layers);
        t.push_back({item, {{"tokens_per_s", summarize(m).mean, true}}});
    }
    for (const auto& p : r.sweeps) {
        if (!p.error.empty() || p.latency_ms.empty()) continue;
        std::string item = fmt::format("{} / {} {} {}", p.backend, model_label(p.model), p.kind, p.n_parallel);
        t.push_back({item,
                     {{"latency_ms", summarize(p).mean, false},
                      {"aggregate_tokens_per_s", aggregate_tokens_per_s(p), true}}});
    }
    return t;
}

std::string format_metric(const std::string& metric, double v) {
    if (metric == "peak_rss_bytes") return format_number(v / (1024.0 * 1024.0), 1) + " MiB";
    if (metric.ends_with("_ms")) return format_number(v, 2) + " ms";
    return format_number(v, 2) + " tok/s";
}

}  // namespace

size_t compare_result::n_regressions() const {
    return static_cast<size_t>(std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r.regression; }));
}

compare_result compare(const bench_report& a, const bench_report& b, double threshold_pct) {
    if (!(threshold_pct >= 0.0)) throw usage_error(fmt::format("regression threshold {}% must be >= 0", threshold_pct));
    compare_result out;
    out.threshold_pct = threshold_pct;
    auto ta = collect(a);
    auto tb = collect(b);
    auto find = [](const metric_table& t, const std::string& item) -> const std::vector<metric_value>* {
        for (const auto& [k, v] : t)
            if (k == item) return &v;
        return nullptr;
    };
    for (const auto& [item, metrics] : ta) {
        const auto* other = find(tb, item);
        if (!other) {
            out.only_in_a.push_back(item);
            continue;
        }
        for (const auto& ma : metrics) {
            auto mb = std::find_if(other->begin(), other->end(), [&](const auto& m) { return m.metric == ma.metric; });
            if (mb == other->end()) continue;
            compare_row row;
            row.item = item;
            row.metric = ma.metric;
            row.a = ma.value;
            row.b = mb->value;
            row.higher_is_better = ma.higher_is_better;
            bool comparable = std::isfinite(row.a) && std::isfinite(row.b) && row.a != 0.0;
            row.ratio = comparable ? row.b / row.a : nan_v;
            row.change_pct = comparable ? (row.b - row.a) / row.a * 100.0 : nan_v;
            if (comparable) {
                double better_pct = row.higher_is_better ? row.change_pct : -row.change_pct;
                row.regression = better_pct < -threshold_pct;
                row.improvement = better_pct > threshold_pct;
            }
            out.rows.push_back(row);
        }
    }
    for (const auto& [item, metrics] : tb)
        if (!find(ta, item)) out.only_in_b.push_back(item);
    return out;
}

std::string render_compare(const compare_result& c, bool markdown) {
    text_table t;
    t.headers = {"item", "metric", "A", "B", "B/A", "change", ""};
    t.right_align = {false, false, true, true, true, true, false};
    for (const auto& r : c.rows) {
        std::string flag = r.regression ? "REGRESSION" : r.improvement ? "improved" : "";
        std::string change = std::isnan(r.change_pct) ? "-" : fmt::format("{:+.1f}%", r.change_pct);
        t.rows.push_back({r.item, r.metric + (r.higher_is_better ? " (higher better)" : " (lower better)"),
                          format_metric(r.metric, r.a), format_metric(r.metric, r.b), format_number(r.ratio, 3),
                          change, flag});
    }
    std::string out = markdown ? t.render_markdown() : t.render_console();
    std::string bullet = markdown ? "- " : "";
    out += "\n";
    for (const auto& item : c.only_in_a) out += bullet + "only in A (baseline): " + item + "\n";
    for (const auto& item : c.only_in_b) out += bullet + "only in B (candidate): " + item + "\n";
    size_t n = c.n_regressions();
    out += n ? fmt::format("{}{} regression(s) beyond {:.1f}%\n", bullet, n, c.threshold_pct)
             : fmt::format("{}no regressions beyond {:.1f}%\n", bullet, c.threshold_pct);
    return out;
}

}  // namespace edgellm::bench
