// Console, Markdown and CSV reporters for benchmark results.
#include "bench/report_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "bench/sanity.h"
#include "bench/stats.h"
#include "core/error.h"

namespace edgellm::bench {

namespace {

constexpr double mib = 1024.0 * 1024.0;

// Display width in terminal columns: counts UTF-8 code points, not bytes ("±" is 2 bytes).
size_t display_width(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

std::string pad(const std::string& s, size_t width, bool right) {
    size_t w = display_width(s);
    if (w >= width) return s;
    std::string fill(width - w, ' ');
    return right ? fill + s : s + fill;
}

// Markdown cells must not contain raw pipes or newlines.
std::string md_cell(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '|') out += "\\|";
        else if (c == '\n' || c == '\r') out += ' ';
        else out += c;
    }
    return out;
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string csv_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : ""; }

std::string mem_mib(const summary& s) { return format_number(s.mean / mib, 1); }

// Resource figures a run could not measure read "n/a" (never 0); a column nobody measured is left out.
constexpr const char* not_available = "n/a";

// A figure bench/sanity.h found impossible keeps its value but says so; the reason is listed
// under the table.
std::string checked(const group_summary& g, const char* metric, std::string text) {
    return g.invalid.count(metric) ? text + " INVALID" : text;
}

text_table groups_table(const std::vector<group_summary>& groups) {
    auto any = [&](auto pred) { return std::any_of(groups.begin(), groups.end(), pred); };
    const bool server = any([](const group_summary& g) {
        return g.server_prefill_tokens_per_s.n > 0 || g.server_decode_tokens_per_s.n > 0;
    });
    const bool gpu_mem = any([](const group_summary& g) { return g.gpu_mem_bytes.max > 0; });
    const bool gpu_util = any([](const group_summary& g) { return g.gpu_util_pct.n > 0; });
    const bool energy = any([](const group_summary& g) { return g.energy_j_per_token.n > 0; });
    const bool draft = any([](const group_summary& g) { return g.draft_acceptance.n > 0; });
    text_table t;
    t.headers = {"backend", "model", "runs", "TTFT ms", "prefill tok/s", "decode tok/s",
                 "latency ms", "p50 ms", "p95 ms", "peak RSS MiB"};
    if (server) {
        t.headers.push_back("server prefill tok/s");
        t.headers.push_back("server decode tok/s");
    }
    if (gpu_mem) t.headers.push_back("GPU mem MiB");
    if (gpu_util) t.headers.push_back("GPU %");
    if (energy) t.headers.push_back("J/token");
    if (draft) t.headers.push_back("draft accepted %");
    t.right_align.assign(t.headers.size(), true);
    t.right_align[0] = t.right_align[1] = false;
    for (const auto& g : groups) {
        std::string runs = std::to_string(g.n_runs);
        if (g.n_failed) runs += fmt::format(" ({} failed)", g.n_failed);
        std::vector<std::string> row = {
            g.backend, model_label(g.model), runs,
            checked(g, metric_ttft, format_mean_std(g.ttft_ms.mean, g.ttft_ms.std, g.ttft_ms.n, 1)),
            checked(g, metric_prefill, format_mean_std(g.prefill_tokens_per_s.mean, g.prefill_tokens_per_s.std,
                                                       g.prefill_tokens_per_s.n, 1)),
            checked(g, metric_decode, format_mean_std(g.decode_tokens_per_s.mean, g.decode_tokens_per_s.std,
                                                      g.decode_tokens_per_s.n, 1)),
            checked(g, metric_latency, format_mean_std(g.latency_ms.mean, g.latency_ms.std, g.latency_ms.n, 1)),
            format_number(g.latency_ms.p50, 1), format_number(g.latency_ms.p95, 1),
            g.peak_rss_bytes.n > 0 ? mem_mib(g.peak_rss_bytes) : not_available};
        if (server) {
            const auto& sp = g.server_prefill_tokens_per_s;
            const auto& sd = g.server_decode_tokens_per_s;
            row.push_back(sp.n > 0 ? format_mean_std(sp.mean, sp.std, sp.n, 1) : "-");
            row.push_back(sd.n > 0 ? format_mean_std(sd.mean, sd.std, sd.n, 1) : "-");
        }
        if (gpu_mem) row.push_back(g.gpu_mem_bytes.max > 0 ? mem_mib(g.gpu_mem_bytes) : not_available);
        if (gpu_util) row.push_back(g.gpu_util_pct.n > 0 ? format_number(g.gpu_util_pct.mean, 0) : not_available);
        if (energy)
            row.push_back(g.energy_j_per_token.n > 0
                              ? format_mean_std(g.energy_j_per_token.mean, g.energy_j_per_token.std,
                                                g.energy_j_per_token.n, 3)
                              : not_available);
        if (draft)
            row.push_back(g.draft_acceptance.n > 0 ? format_number(100.0 * g.draft_acceptance.mean, 1) : "-");
        t.rows.push_back(std::move(row));
    }
    return t;
}

text_table micro_table(const std::vector<micro_result>& micro) {
    text_table t;
    t.headers = {"backend", "model", "threads", "batch", "ngl", "test", "t/s"};
    t.right_align = {false, false, true, true, true, true, true};
    for (const auto& m : micro) {
        summary s = summarize(m);
        t.rows.push_back({m.backend, model_label(m.model), std::to_string(m.n_threads), std::to_string(m.n_batch),
                          m.n_gpu_layers < 0 ? std::string("-") : std::to_string(m.n_gpu_layers), micro_test_name(m),
                          m.error.empty() ? format_mean_std(s.mean, s.std, s.n, 2) : "failed: " + m.error});
    }
    return t;
}

text_table sweep_table(const std::vector<sweep_point>& sweeps) {
    text_table t;
    t.headers = {"backend", "model", "sweep", "n", "requests", "latency ms", "p95 ms", "aggregate tok/s"};
    t.right_align = {false, false, false, true, true, true, true, true};
    for (const auto& p : sweeps) {
        summary s = summarize(p);
        t.rows.push_back({p.backend, model_label(p.model), p.kind, std::to_string(p.n_parallel), std::to_string(s.n),
                          p.error.empty() ? format_mean_std(s.mean, s.std, s.n, 1) : "failed: " + p.error,
                          format_number(s.p95, 1), format_number(aggregate_tokens_per_s(p), 1)});
    }
    return t;
}

std::string metric_title(const std::string& metric) {
    if (metric == "latency_ms") return "latency";
    if (metric == "ttft_ms") return "time to first token";
    if (metric == "decode_tokens_per_s") return "decode speed";
    if (metric == "prefill_tokens_per_s") return "prefill speed";
    if (metric == "peak_rss_bytes") return "peak memory";
    return metric;
}

std::string metric_value(const std::string& metric, double v) {
    if (metric == "peak_rss_bytes") return format_number(v / mib, 1) + " MiB";
    if (metric.ends_with("_ms")) return format_number(v, 1) + " ms";
    return format_number(v, 1) + " tok/s";
}

// "latency: best native / m (12.0 ms), worst x / m (30.0 ms) -> 2.50x"
std::vector<std::string> extremes_lines(const std::vector<group_summary>& groups) {
    std::vector<std::string> lines;
    if (groups.size() < 2) return lines;
    for (const auto& e : standard_extremes(groups)) {
        if (std::isnan(e.ratio)) continue;
        lines.push_back(fmt::format("{}: best {} ({}), worst {} ({}), {:.2f}x", metric_title(e.metric), e.best,
                                    metric_value(e.metric, e.best_value), e.worst,
                                    metric_value(e.metric, e.worst_value), e.ratio));
    }
    return lines;
}

std::string system_line(const bench_report& r) {
    const auto& s = r.system;
    std::string gpu = s.gpu.empty() ? "no GPU" : s.gpu;
    if (!s.gpu.empty() && s.gpu_mem_total_bytes) gpu += fmt::format(" ({:.1f} GiB)", s.gpu_mem_total_bytes / (mib * 1024));
    return fmt::format("{} | {} ({} cores) | RAM {:.1f} GiB | {} | {}", s.device.empty() ? "?" : s.device,
                       s.cpu.empty() ? "unknown CPU" : s.cpu, s.n_cpu_cores, s.ram_total_bytes / (mib * 1024), gpu,
                       s.os.empty() ? "unknown OS" : s.os);
}

std::string build_line(const bench_report& r) {
    const auto& b = r.build;
    return fmt::format("edgellm {}{} | {} {} | CUDA {}", b.version, b.commit.empty() ? "" : " (" + b.commit + ")",
                       b.compiler, b.build_type, cuda_state(b));
}

// " | deterministic | model_draft d.gguf | ..." for the backend options a report's runs used
// (flags show as their name alone).
std::string options_text(const std::map<std::string, std::string>& options) {
    std::string out;
    for (const auto& [k, v] : options) out += v == "1" ? fmt::format(" | {}", k) : fmt::format(" | {} {}", k, v);
    return out;
}

std::string settings_line(const bench_report& r) {
    const auto& s = r.settings;
    return fmt::format("mode {} | {} run(s) after {} warm-up | n_predict {} | prompts {} | threads {} | ngl {} | "
                       "seed {} | temp {}",
                       s.mode, s.n_runs, s.n_warmup, s.n_predict, s.prompt_set.empty() ? "-" : s.prompt_set,
                       s.n_threads ? std::to_string(s.n_threads) : "auto",
                       s.n_gpu_layers < 0 ? std::string("default") : std::to_string(s.n_gpu_layers), s.seed, s.temperature) +
           options_text(s.options);
}

}  // namespace

std::string cuda_state(const build_info& b) {
    if (!b.cuda) return "off";
    return b.cuda_offload ? "on" : "kernels built, no device";
}

std::string format_number(double v, int decimals) {
    if (std::isnan(v)) return "-";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return fmt::format("{:.{}f}", v, decimals);
}

std::string format_mean_std(double mean, double std, size_t n, int decimals) {
    if (std::isnan(mean)) return "-";
    if (n < 2) return format_number(mean, decimals);
    return format_number(mean, decimals) + " ± " + format_number(std, decimals);
}

std::string text_table::render_console() const {
    std::vector<size_t> widths(headers.size(), 0);
    for (size_t c = 0; c < headers.size(); ++c) widths[c] = display_width(headers[c]);
    for (const auto& row : rows)
        for (size_t c = 0; c < row.size() && c < widths.size(); ++c)
            widths[c] = std::max(widths[c], display_width(row[c]));
    auto line = [&](const std::vector<std::string>& cells) {
        std::string out;
        for (size_t c = 0; c < widths.size(); ++c) {
            bool right = c < right_align.size() && right_align[c];
            std::string cell = c < cells.size() ? cells[c] : "";
            if (c) out += "  ";
            out += pad(cell, widths[c], right);
        }
        while (!out.empty() && out.back() == ' ') out.pop_back();
        return out + "\n";
    };
    std::string out = line(headers);
    std::string rule;
    for (size_t c = 0; c < widths.size(); ++c) {
        if (c) rule += "  ";
        rule.append(widths[c], '-');
    }
    out += rule + "\n";
    for (const auto& row : rows) out += line(row);
    return out;
}

std::string text_table::render_markdown() const {
    std::string out = "|";
    for (const auto& h : headers) out.append(" ").append(md_cell(h)).append(" |");
    out += "\n|";
    for (size_t c = 0; c < headers.size(); ++c) out += (c < right_align.size() && right_align[c]) ? " ---: |" : " --- |";
    out += "\n";
    for (const auto& row : rows) {
        out += "|";
        for (size_t c = 0; c < headers.size(); ++c) out.append(" ").append(md_cell(c < row.size() ? row[c] : "")).append(" |");
        out += "\n";
    }
    return out;
}

std::string render_console(const bench_report& r) {
    std::string out = fmt::format("edgellm bench ({}) {}\n", r.schema, r.created_utc);
    out.append("system:   ").append(system_line(r)).append("\n");
    out.append("build:    ").append(build_line(r)).append("\n");
    out.append("settings: ").append(settings_line(r)).append("\n");
    auto groups = checked_groups(r);
    if (!groups.empty()) out.append("\n").append(groups_table(groups).render_console());
    for (const auto& n : sanity_notes(r, groups)) out += "  " + n + "\n";
    for (const auto& n : resource_notes(r)) out += "  " + n + "\n";
    auto lines = extremes_lines(groups);
    if (!lines.empty()) {
        out += "\n";
        for (const auto& l : lines) out += l + "\n";
    }
    if (!r.micro.empty()) out.append("\n").append(micro_table(r.micro).render_console());
    if (!r.sweeps.empty()) out.append("\n").append(sweep_table(r.sweeps).render_console());
    for (const auto& s : r.samples)
        if (!s.error.empty())
            out += fmt::format("failed: {} / {} prompt {} run {}: {}\n", s.backend, model_label(s.model), s.prompt_id, s.run_index,
                               s.error);
    return out;
}

std::string render_markdown(const bench_report& r) {
    std::string out = "# edgellm benchmark\n\n";
    out += fmt::format("- **date**: {}\n- **system**: {}\n- **build**: {}\n- **settings**: {}\n- **schema**: {}\n",
                       md_cell(r.created_utc), md_cell(system_line(r)), md_cell(build_line(r)),
                       md_cell(settings_line(r)), r.schema);
    auto groups = checked_groups(r);
    if (!groups.empty()) {
        out += "\n## Results per backend and model\n\nmean ± sample std over the measured runs; p50/p95 of "
               "end-to-end latency.\n\n";
        out += groups_table(groups).render_markdown();
        auto notes = sanity_notes(r, groups);
        for (const auto& n : resource_notes(r)) notes.push_back(n);
        if (!notes.empty()) out += "\n";
        for (const auto& n : notes) out.append("- ").append(md_cell(n)).append("\n");
        auto lines = extremes_lines(groups);
        if (!lines.empty()) {
            out += "\n";
            for (const auto& l : lines) out.append("- ").append(md_cell(l)).append("\n");
        }
    }
    if (!r.micro.empty()) out.append("\n## Prefill / decode tests\n\n").append(micro_table(r.micro).render_markdown());
    if (!r.sweeps.empty()) out.append("\n## Batch and concurrency sweeps\n\n").append(sweep_table(r.sweeps).render_markdown());
    return out;
}

std::vector<std::string> sanity_notes(const bench_report& r, const std::vector<group_summary>& groups) {
    std::vector<std::string> notes;
    for (const auto& g : groups) {
        for (const auto& [metric, why] : g.invalid) notes.push_back(fmt::format("INVALID {} {}: {}", g.label(), metric, why));
        for (const auto& w : g.warnings) notes.push_back(fmt::format("note: {} {}", g.label(), w));
        // Runs' own notes (why a figure is missing), once per group with a count.
        std::vector<std::pair<std::string, int>> seen;
        for (const auto& s : r.samples) {
            if (s.backend != g.backend || s.model != g.model || !s.error.empty()) continue;
            for (const auto& n : s.notes) {
                auto it = std::find_if(seen.begin(), seen.end(), [&](const auto& p) { return p.first == n; });
                if (it == seen.end()) seen.emplace_back(n, 1);
                else ++it->second;
            }
        }
        for (const auto& [n, count] : seen) notes.push_back(fmt::format("note: {} {} ({} run(s))", g.label(), n, count));
    }
    return notes;
}

std::vector<std::string> resource_notes(const bench_report& r) {
    std::vector<std::string> notes;
    std::vector<std::string> seen;
    auto once = [&](const std::string& line) {
        if (std::find(seen.begin(), seen.end(), line) != seen.end()) return;
        seen.push_back(line);
        notes.push_back(line);
    };
    for (const auto& s : r.samples) {
        if (!s.error.empty()) continue;
        const std::string who = s.backend + " / " + model_label(s.model);
        if (s.monitored_process.empty() && s.peak_rss_bytes == 0)
            once(fmt::format("{}: memory and CPU not measured (no server process to follow)", who));
        else if (!s.monitored_process.empty() && s.monitored_process != "self")
            once(fmt::format("{}: memory and CPU of its server/worker process, {}", who, s.monitored_process));
        if (!s.load_note.empty()) once(fmt::format("{}: {}", who, s.load_note));
        if (!s.power_source.empty()) once(fmt::format("{}: power from {} (device-wide)", who, s.power_source));
        if (s.n_gen_tokens_estimated)
            once(fmt::format("{}: tokens out counted from streamed chunks (the server reported no count): "
                             "an estimate, and so is decode tok/s", who));
    }
    return notes;
}

std::vector<std::string> csv_columns() {
    return {"kind",           "backend",        "model",         "prompt_id",          "run_index",
            "test",           "n_parallel",     "n_threads",     "n_batch",            "n_gpu_layers",
            "n_depth",        "n_prompt_tokens", "n_gen_tokens", "ttft_ms",            "prefill_tokens_per_s",
            "decode_tokens_per_s", "latency_ms", "tokens_per_s", "tokens_per_s_std",   "aggregate_tokens_per_s",
            "peak_rss_bytes", "gpu_mem_bytes",  "cpu_pct",       "gpu_util_pct",       "energy_j_per_token",
            "energy_j",       "mean_power_w",   "power_source",  "monitored_process",  "n_gen_tokens_estimated",
            "error",          "output_sample"};
}

std::string render_csv(const bench_report& r) {
    const auto cols = csv_columns();
    auto emit = [&](const std::vector<std::pair<std::string, std::string>>& kv) {
        std::string line;
        for (size_t c = 0; c < cols.size(); ++c) {
            std::string v;
            for (const auto& [k, val] : kv)
                if (k == cols[c]) v = val;
            if (c) line += ',';
            line += csv_field(v);
        }
        return line + "\n";
    };
    std::string out;
    for (size_t c = 0; c < cols.size(); ++c) {
        if (c) out += ',';
        out += cols[c];
    }
    out += "\n";
    for (const auto& s : r.samples) {
        out += emit({{"kind", "run"},
                     {"backend", s.backend},
                     {"model", s.model},
                     {"prompt_id", s.prompt_id},
                     {"run_index", std::to_string(s.run_index)},
                     {"n_prompt_tokens", std::to_string(s.n_prompt_tokens)},
                     {"n_gen_tokens", std::to_string(s.n_gen_tokens)},
                     {"ttft_ms", csv_number(s.ttft_ms)},
                     {"prefill_tokens_per_s", csv_number(s.prefill_tokens_per_s)},
                     {"decode_tokens_per_s", csv_number(s.decode_tokens_per_s)},
                     {"latency_ms", csv_number(s.latency_ms)},
                     // Empty cells: not measured (0 bytes would read as a measurement).
                     {"peak_rss_bytes", s.peak_rss_bytes ? std::to_string(s.peak_rss_bytes) : ""},
                     {"gpu_mem_bytes", s.gpu_mem_bytes ? std::to_string(s.gpu_mem_bytes) : ""},
                     {"cpu_pct", csv_number(s.cpu_pct)},
                     {"gpu_util_pct", csv_number(s.gpu_util_pct)},
                     {"energy_j_per_token", s.energy_j_per_token ? csv_number(*s.energy_j_per_token) : ""},
                     {"energy_j", s.energy_j ? csv_number(*s.energy_j) : ""},
                     {"mean_power_w", s.mean_power_w ? csv_number(*s.mean_power_w) : ""},
                     {"power_source", s.power_source},
                     {"monitored_process", s.monitored_process},
                     {"n_gen_tokens_estimated", s.n_gen_tokens_estimated ? "true" : "false"},
                     {"error", s.error},
                     {"output_sample", s.output_sample}});
    }
    for (const auto& m : r.micro) {
        summary s = summarize(m);
        out += emit({{"kind", "micro"},
                     {"backend", m.backend},
                     {"model", m.model},
                     {"test", micro_test_name(m)},
                     {"n_threads", std::to_string(m.n_threads)},
                     {"n_batch", std::to_string(m.n_batch)},
                     {"n_gpu_layers", std::to_string(m.n_gpu_layers)},
                     {"n_depth", std::to_string(m.n_depth)},
                     {"n_prompt_tokens", std::to_string(m.n_prompt)},
                     {"n_gen_tokens", std::to_string(m.n_gen)},
                     {"tokens_per_s", csv_number(s.mean)},
                     {"tokens_per_s_std", csv_number(s.std)},
                     {"error", m.error}});
    }
    for (const auto& p : r.sweeps) {
        summary s = summarize(p);
        out += emit({{"kind", "sweep"},
                     {"backend", p.backend},
                     {"model", p.model},
                     {"test", p.kind},
                     {"n_parallel", std::to_string(p.n_parallel)},
                     {"n_gen_tokens", std::to_string(p.n_gen_tokens)},
                     {"latency_ms", csv_number(s.mean)},
                     {"aggregate_tokens_per_s", csv_number(aggregate_tokens_per_s(p))},
                     {"error", p.error}});
    }
    return out;
}

void write_output(const std::string& path, const std::string& text) {
    if (path == "-") {
        if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
            throw error("cannot write report to stdout");
        return;
    }
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw error(fmt::format("cannot write report '{}': {}", path, std::strerror(errno)));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) throw error(fmt::format("cannot write report '{}': write failed", path));
}

}  // namespace edgellm::bench
