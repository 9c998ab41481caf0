// Text reporters for benchmark results: the aligned console table, Markdown and CSV, plus
// the output helper that treats "-" as stdout.
#pragma once
#include <string>
#include <vector>

#include "bench/result.h"

namespace edgellm::bench {

// Console report: header with system and settings, a table per backend/model (mean ± std,
// p50/p95, memory), the fastest/slowest lines, and micro/sweep tables when present.
std::string render_console(const bench_report& report);

// The same content as GitHub-flavoured Markdown tables.
std::string render_markdown(const bench_report& report);

// One tidy CSV table (RFC 4180 quoting), one row per run sample, micro test and sweep point;
// the first column `kind` says which ("run", "micro", "sweep") and columns that do not apply
// to a row are empty. See docs/bench.md for the column list.
std::string render_csv(const bench_report& report);
std::vector<std::string> csv_columns();

// One line per backend/model about how its resource figures were obtained: whose memory and
// CPU (the server's PID, or not measured), where power came from, and token counts that are
// estimates (counted from streamed chunks). Shown under the results table in every format.
std::vector<std::string> resource_notes(const bench_report& report);

// The verdicts of bench/sanity.h for `groups` (from checked_groups): "INVALID <group> <metric>:
// <reason>" per invalid figure, "note: ..." for server-vs-clock disagreements and the runs' own
// notes (why a figure is missing), with how many runs they concern.
struct group_summary;
std::vector<std::string> sanity_notes(const bench_report& report, const std::vector<group_summary>& groups);

// A simple aligned text table; numbers are right-aligned. Shared by the reporters and compare.
struct text_table {
    std::vector<std::string> headers;
    std::vector<bool> right_align;  // per column; missing entries mean left
    std::vector<std::vector<std::string>> rows;
    std::string render_console() const;
    std::string render_markdown() const;
};

// The build's CUDA state for labels: "off", "kernels built, no device" or "on" (kernels built and
// a device found: -ngl offloads); whether a run offloaded is its n_gpu_layers.
std::string cuda_state(const build_info& b);

// Formats v with `decimals` digits; "-" for NaN (not measured).
std::string format_number(double v, int decimals);
// "12.3 ± 0.4" (or just "12.3" when std is 0 and n < 2, "-" when NaN).
std::string format_mean_std(double mean, double std, size_t n, int decimals);

// Writes text to `path`, or to stdout when path is "-". Throws edgellm::error on failure.
void write_output(const std::string& path, const std::string& text);

}  // namespace edgellm::bench
