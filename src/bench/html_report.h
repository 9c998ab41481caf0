// Self-contained HTML dashboard of a benchmark report: inline CSS and SVG charts, no
// JavaScript and no network (a Content-Security-Policy forbids both).
#pragma once
#include <string>

#include "bench/result.h"

namespace edgellm::bench {

// Sections: system/device summary; bars (mean ± std) of latency, TTFT, decode and prefill
// tokens/s and peak memory per backend/model; latency per prompt; micro tests; latency and
// aggregate throughput vs batch size/concurrency; resource time series per run; the results
// tables; sample outputs. Sections without data are left out.
std::string render_html(const bench_report& report);

}  // namespace edgellm::bench
