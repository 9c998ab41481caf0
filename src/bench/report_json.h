// JSON form of a benchmark report (schema "edgellm.bench/v1", docs/bench-schema.json): every
// raw sample plus derived summaries, and the reader that compare() uses to load it back.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "bench/result.h"

namespace edgellm::bench {

// The report as JSON. Derived values (summaries, extremes, test names, aggregate throughput)
// are included for readers' convenience; NaN and infinity become null.
nlohmann::json report_to_json(const bench_report& report);

// Pretty-printed JSON text (2-space indent, trailing newline).
std::string render_json(const bench_report& report);

// Reads the raw parts of a report back (derived values are recomputed, not trusted). Throws
// edgellm::error naming the JSON path of a missing or mistyped field, or a foreign schema.
bench_report report_from_json(const nlohmann::json& j);

// Loads a report file; the error names the file.
bench_report load_report(const std::string& path);

}  // namespace edgellm::bench
