// Self-contained HTML dashboard for benchmark reports (see html_report.h).
#include "bench/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "bench/report_text.h"
#include "bench/sanity.h"
#include "bench/stats.h"
#include "bench/svg_chart.h"

namespace edgellm::bench {

namespace {

using svg::escape;
constexpr double mib = 1024.0 * 1024.0;
constexpr size_t max_series_per_resource_chart = 12;

const char* const style = R"css(
:root{--fg:#111827;--muted:#6b7280;--border:#e5e7eb;--bg:#f3f4f6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#111827;color:#fff;padding:20px 32px}
header h1{margin:0;font-size:22px;font-weight:650}
header p{margin:4px 0 0;color:#d1d5db}
main{max-width:1240px;margin:0 auto;padding:20px 32px}
section{margin-bottom:28px}
h2{font-size:18px;margin:0 0 12px;padding-bottom:6px;border-bottom:1px solid #d1d5db}
h3{font-size:15px;margin:16px 0 8px}
.note{color:var(--muted);margin:-4px 0 12px}
ul.note{margin:6px 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px}
.card{background:#fff;border:1px solid var(--border);border-radius:8px;padding:10px 14px}
.card .k{color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.05em}
.card .v{font-weight:600;word-break:break-word}
.findings{background:#fff;border:1px solid var(--border);border-radius:8px;padding:10px 14px 10px 32px;margin:12px 0 0}
.findings li{margin:2px 0}
.invalid{background:#fff4f4;border:1px solid #e0a0a0;border-radius:8px;padding:6px 14px;margin:12px 0 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:14px}
.charts.small{grid-template-columns:repeat(auto-fill,minmax(360px,1fr))}
figure{margin:0;background:#fff;border:1px solid var(--border);border-radius:8px;padding:6px;overflow:hidden}
figure svg{width:100%;height:auto;display:block}
.table-wrap{overflow-x:auto;border:1px solid var(--border);border-radius:8px;background:#fff}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid var(--border);text-align:left;white-space:nowrap}
th{background:#f9fafb;font-weight:600;white-space:normal;vertical-align:bottom}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:last-child td{border-bottom:none}
td.err{color:#b91c1c;white-space:normal}
details{margin:8px 0}
summary{cursor:pointer;font-weight:600}
.sample{background:#fff;border:1px solid var(--border);border-radius:8px;padding:8px 12px;margin:0 0 10px}
.sample .meta{color:var(--muted);font-size:12px}
.sample pre{white-space:pre-wrap;word-break:break-word;margin:4px 0 0;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
footer{color:var(--muted);font-size:12px;padding:8px 32px 24px;text-align:center}
@media print{body{background:#fff}header{background:#fff;color:#000;border-bottom:2px solid #000}
header p{color:#333}.charts{grid-template-columns:1fr 1fr}figure,.sample{break-inside:avoid}}
)css";

std::string html_table(const text_table& t, const std::vector<bool>& error_cols = {}) {
    std::string out = "<div class=\"table-wrap\"><table><thead><tr>";
    auto cls = [&](size_t c) {
        if (c < error_cols.size() && error_cols[c]) return std::string(" class=\"err\"");
        return c < t.right_align.size() && t.right_align[c] ? std::string(" class=\"num\"") : std::string();
    };
    for (size_t c = 0; c < t.headers.size(); ++c) out += fmt::format("<th{}>{}</th>", cls(c), escape(t.headers[c]));
    out += "</tr></thead><tbody>";
    for (const auto& row : t.rows) {
        out += "<tr>";
        for (size_t c = 0; c < t.headers.size(); ++c)
            out += fmt::format("<td{}>{}</td>", cls(c), escape(c < row.size() ? row[c] : ""));
        out += "</tr>";
    }
    return out + "</tbody></table></div>";
}

std::string figure(const std::string& svg_text) { return "<figure>" + svg_text + "</figure>"; }

template <class T>
size_t index_of(std::vector<T>& list, const T& v) {
    auto it = std::find(list.begin(), list.end(), v);
    if (it != list.end()) return static_cast<size_t>(it - list.begin());
    list.push_back(v);
    return list.size() - 1;
}

// Stable colours: one palette slot per backend, in order of first appearance anywhere.
struct color_map {
    std::vector<std::string> backends;
    int of(const std::string& backend) { return static_cast<int>(index_of(backends, backend)); }
};

std::string card(const std::string& key, const std::string& value) {
    return fmt::format("<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>", escape(key),
                       escape(value.empty() ? "-" : value));
}

std::string system_section(const bench_report& r) {
    const auto& s = r.system;
    const auto& b = r.build;
    const auto& st = r.settings;
    std::string gpu = s.gpu.empty() ? "none" : s.gpu;
    if (!s.gpu.empty() && s.gpu_mem_total_bytes) gpu += fmt::format(" ({:.1f} GiB)", s.gpu_mem_total_bytes / (mib * 1024));
    std::string out = "<section id=\"system\"><h2>System</h2><div class=\"cards\">";
    out += card("Device", s.device);
    out += card("CPU", s.n_cpu_cores ? fmt::format("{} ({} cores)", s.cpu, s.n_cpu_cores) : s.cpu);
    out += card("GPU", gpu);
    out += card("Memory", s.ram_total_bytes ? fmt::format("{:.1f} GiB", s.ram_total_bytes / (mib * 1024)) : "");
    out += card("OS", s.os);
    out += card("edgellm", fmt::format("{}{} \u00b7 {} \u00b7 {}{}", b.version, b.commit.empty() ? "" : " (" + b.commit + ")",
                                       b.compiler, b.build_type, b.cuda ? fmt::format(" \u00b7 CUDA {}", cuda_state(b)) : std::string()));
    out += card("Runs", fmt::format("{} measured after {} warm-up, up to {} tokens", st.n_runs, st.n_warmup, st.n_predict));
    out += card("Sampling", fmt::format("seed {}, temperature {}, threads {}, GPU layers {}", st.seed, st.temperature,
                                        st.n_threads ? std::to_string(st.n_threads) : "auto",
                                        st.n_gpu_layers < 0 ? std::string("default") : std::to_string(st.n_gpu_layers)));
    return out + "</div></section>";
}

std::string findings(const std::vector<group_summary>& groups) {
    if (groups.size() < 2) return "";
    std::string items;
    for (const auto& e : standard_extremes(groups)) {
        if (std::isnan(e.ratio)) continue;
        std::string what = e.metric == "latency_ms"             ? "end-to-end latency"
                           : e.metric == "ttft_ms"              ? "time to first token"
                           : e.metric == "decode_tokens_per_s"  ? "decode speed"
                           : e.metric == "prefill_tokens_per_s" ? "prefill speed"
                                                                : "peak memory";
        bool memory = e.metric == "peak_rss_bytes";
        std::string verb = memory ? "uses" : "is";
        std::string adj = memory ? "less memory" : "faster";
        items += fmt::format("<li><b>{}</b>: {} {} {:.2f}\u00d7 {} than {} </li>", escape(what), escape(e.best), verb,
                             e.ratio, adj, escape(e.worst));
    }
    return items.empty() ? "" : "<ul class=\"findings\">" + items + "</ul>";
}

// The figures bench/sanity.h rejected, with the reason: they are left out of the findings and
// the charts, and marked in the tables.
std::string invalid_list(const std::vector<group_summary>& groups) {
    std::string items;
    for (const auto& g : groups)
        for (const auto& [metric, why] : g.invalid)
            items += fmt::format("<li><b>{} {}</b>: {}</li>", escape(g.label()), escape(metric), escape(why));
    if (items.empty()) return "";
    return "<div class=\"invalid\"><p><b>Invalid figures</b> (not charted, never ranked):</p><ul>" + items + "</ul></div>";
}

// `metric`: the sanity metric name of the figure; a group whose figure is invalid gets no bar.
svg::bar_chart group_bars(const std::vector<group_summary>& groups, color_map& colors, const std::string& title,
                          const std::string& y_label, const std::function<summary(const group_summary&)>& pick,
                          const std::string& metric = "") {
    svg::bar_chart c;
    c.title = title;
    c.y_label = y_label;
    std::vector<std::string> backends;
    for (const auto& g : groups) {
        index_of(c.categories, model_label(g.model));
        index_of(backends, g.backend);
    }
    for (const auto& b : backends) {
        svg::bar_series s;
        s.name = b;
        s.values.assign(c.categories.size(), std::nan(""));
        s.errors.assign(c.categories.size(), 0.0);
        for (const auto& g : groups) {
            if (g.backend != b) continue;
            size_t i = index_of(c.categories, model_label(g.model));
            summary v = pick(g);
            if (v.n == 0 || g.invalid.count(metric)) continue;
            s.values[i] = v.mean;
            s.errors[i] = v.std;
        }
        c.series.push_back(std::move(s));
        c.colors.push_back(colors.of(b));
    }
    return c;
}

summary scaled(summary s, double f) {
    s.mean /= f;
    s.std /= f;
    return s;
}

std::string prompt_section(const bench_report& r, const std::vector<group_summary>& groups, color_map& colors) {
    if (groups.empty()) return "";
    std::string out = "<section id=\"results\"><h2>Backends and models</h2>";
    out += fmt::format("<p class=\"note\">Bars show the mean over successful runs; whiskers show \u00b1 one sample "
                       "standard deviation.</p>");
    out += findings(groups);
    out += invalid_list(groups);
    out += "<div class=\"charts\" style=\"margin-top:14px\">";
    out += figure(svg::render_bar_chart(group_bars(groups, colors, "Mean end-to-end latency", "latency (ms)",
                                                   [](const group_summary& g) { return g.latency_ms; }, metric_latency)));
    out += figure(svg::render_bar_chart(group_bars(groups, colors, "Time to first token", "TTFT (ms)",
                                                   [](const group_summary& g) { return g.ttft_ms; }, metric_ttft)));
    out += figure(svg::render_bar_chart(group_bars(groups, colors, "Decode speed", "tokens/s",
                                                   [](const group_summary& g) { return g.decode_tokens_per_s; }, metric_decode)));
    out += figure(svg::render_bar_chart(group_bars(groups, colors, "Prefill speed", "tokens/s",
                                                   [](const group_summary& g) { return g.prefill_tokens_per_s; }, metric_prefill)));
    out += figure(svg::render_bar_chart(group_bars(groups, colors, "Peak resident memory (RSS)", "MiB",
                                                   [](const group_summary& g) { return scaled(g.peak_rss_bytes, mib); })));
    bool any_gpu = std::any_of(groups.begin(), groups.end(), [](const auto& g) { return g.gpu_mem_bytes.max > 0; });
    if (any_gpu)
        out += figure(svg::render_bar_chart(group_bars(groups, colors, "Peak GPU memory", "MiB", [](const group_summary& g) {
            return scaled(g.gpu_mem_bytes, mib);
        })));

    // Latency per prompt: prompts of different lengths behave differently per backend.
    svg::bar_chart per_prompt;
    per_prompt.title = "Latency per prompt";
    per_prompt.y_label = "latency (ms)";
    for (const auto& s : r.samples) index_of(per_prompt.categories, s.prompt_id);
    for (const auto& g : groups) {
        svg::bar_series ser;
        ser.name = groups.size() > 1 && std::any_of(groups.begin(), groups.end(), [&](const auto& o) {
            return o.model != g.model;
        }) ? g.label() : g.backend;
        for (const auto& prompt : per_prompt.categories) {
            std::vector<double> v;
            for (const auto& s : r.samples)
                if (s.backend == g.backend && s.model == g.model && s.prompt_id == prompt && s.error.empty())
                    v.push_back(s.latency_ms);
            summary sm = summarize(v);
            ser.values.push_back(sm.mean);
            ser.errors.push_back(sm.n > 1 ? sm.std : 0.0);
        }
        per_prompt.series.push_back(std::move(ser));
        per_prompt.colors.push_back(static_cast<int>(per_prompt.colors.size()));
    }
    if (per_prompt.categories.size() > 1) out += figure(svg::render_bar_chart(per_prompt));
    return out + "</div></section>";
}

std::string micro_section(const bench_report& r) {
    if (r.micro.empty()) return "";
    svg::bar_chart c;
    c.title = "Prefill / decode tests (llama-bench style)";
    c.y_label = "tokens/s";
    std::vector<std::string> series_names;
    for (const auto& m : r.micro) {
        index_of(c.categories, micro_test_name(m));
        index_of(series_names, fmt::format("{} / {} t{} b{} ngl{}", m.backend, model_label(m.model), m.n_threads, m.n_batch,
                                           m.n_gpu_layers));
    }
    for (const auto& name : series_names) {
        svg::bar_series s;
        s.name = name;
        s.values.assign(c.categories.size(), std::nan(""));
        s.errors.assign(c.categories.size(), 0.0);
        c.series.push_back(std::move(s));
    }
    for (const auto& m : r.micro) {
        if (!m.error.empty()) continue;
        size_t si = index_of(series_names, fmt::format("{} / {} t{} b{} ngl{}", m.backend, model_label(m.model), m.n_threads,
                                                       m.n_batch, m.n_gpu_layers));
        size_t ci = index_of(c.categories, micro_test_name(m));
        summary sm = summarize(m);
        c.series[si].values[ci] = sm.mean;
        c.series[si].errors[ci] = sm.n > 1 ? sm.std : 0.0;
    }
    for (size_t i = 0; i < series_names.size(); ++i) c.colors.push_back(static_cast<int>(i));
    c.width = 1120;
    c.height = 340;
    std::string out = "<section id=\"micro\"><h2>Prefill and decode tests</h2>";
    out += "<div class=\"charts\" style=\"grid-template-columns:1fr\">" + figure(svg::render_bar_chart(c)) + "</div>";
    return out + "</section>";
}

std::string sweep_section(const bench_report& r, color_map& colors) {
    if (r.sweeps.empty()) return "";
    std::vector<std::string> kinds;
    for (const auto& p : r.sweeps) index_of(kinds, p.kind);
    std::string out = "<section id=\"sweeps\"><h2>Batch size and concurrency</h2><div class=\"charts\">";
    for (const auto& kind : kinds) {
        std::string axis = kind == "batch" ? "batch size" : "concurrent requests";
        svg::line_chart lat, thr;
        lat.title = fmt::format("Mean latency vs {}", axis);
        lat.y_label = "latency (ms)";
        thr.title = fmt::format("Aggregate throughput vs {}", axis);
        thr.y_label = "tokens/s (all requests)";
        lat.x_label = thr.x_label = axis;
        lat.log2_x = thr.log2_x = true;
        std::vector<std::string> names;
        for (const auto& p : r.sweeps)
            if (p.kind == kind) index_of(names, p.backend + " / " + p.model);
        for (const auto& name : names) {
            svg::line_series a, b;
            a.name = b.name = name;
            std::string backend;
            for (const auto& p : r.sweeps) {
                if (p.kind != kind || p.backend + " / " + p.model != name || !p.error.empty()) continue;
                backend = p.backend;
                a.x.push_back(p.n_parallel);
                a.y.push_back(summarize(p).mean);
                b.x.push_back(p.n_parallel);
                b.y.push_back(aggregate_tokens_per_s(p));
            }
            lat.series.push_back(std::move(a));
            thr.series.push_back(std::move(b));
            int color = names.size() > colors.backends.size() ? static_cast<int>(lat.colors.size()) : colors.of(backend);
            lat.colors.push_back(color);
            thr.colors.push_back(color);
        }
        out += figure(svg::render_line_chart(lat)) + figure(svg::render_line_chart(thr));
    }
    return out + "</div></section>";
}

std::string resource_section(const bench_report& r, const std::vector<group_summary>& groups) {
    bool any = std::any_of(r.samples.begin(), r.samples.end(), [](const auto& s) { return !s.resources.empty(); });
    if (!any) return "";
    std::string out = "<section id=\"resources\"><h2>Resources over time</h2>"
                      "<p class=\"note\">Sampled by the resource monitor during each measured run; time from the "
                      "start of the run.</p>";
    for (const auto& g : groups) {
        std::vector<const run_sample*> runs;
        for (const auto& s : r.samples)
            if (s.backend == g.backend && s.model == g.model && !s.resources.empty()) runs.push_back(&s);
        if (runs.empty()) continue;
        size_t n_shown = std::min(runs.size(), max_series_per_resource_chart);
        // A chart only for what some run measured: a server nobody could follow has no RSS/CPU
        // series, a machine without GPU readings no GPU charts, unreadable power no power chart.
        bool rss = false, cpu = false, gpu_mem = false, gpu_util = false, power = false;
        std::string power_source;
        for (const auto* s : runs) {
            for (const auto& p : s->resources) {
                rss |= p.rss_bytes > 0;
                cpu |= std::isfinite(p.cpu_pct);
                gpu_mem |= p.gpu_mem_bytes > 0;
                gpu_util |= std::isfinite(p.gpu_util_pct) && p.gpu_util_pct > 0;
                power |= p.power_w.has_value();
            }
            if (power_source.empty()) power_source = s->power_source;
        }
        auto chart = [&](const std::string& title, const std::string& y_label,
                         const std::function<double(const resource_point&)>& f) {
            svg::line_chart c;
            c.title = title;
            c.y_label = y_label;
            c.x_label = "time (s)";
            c.markers = false;
            c.width = 400;
            c.height = 280;
            for (size_t i = 0; i < n_shown; ++i) {
                svg::line_series ser;
                ser.name = fmt::format("{} #{}", runs[i]->prompt_id, runs[i]->run_index);
                for (const auto& p : runs[i]->resources) {
                    ser.x.push_back(p.t_ms / 1000.0);
                    ser.y.push_back(f(p));
                }
                c.series.push_back(std::move(ser));
            }
            return figure(svg::render_line_chart(c));
        };
        out += fmt::format("<details open><summary>{}</summary>", escape(g.label()));
        if (n_shown < runs.size())
            out += fmt::format("<p class=\"note\">showing the first {} of {} runs</p>", n_shown, runs.size());
        out += "<div class=\"charts small\">";
        const double nan = std::nan("");
        if (rss)
            out += chart("Resident memory (RSS)", "MiB",
                         [&](const resource_point& p) { return p.rss_bytes > 0 ? p.rss_bytes / mib : nan; });
        if (cpu) out += chart("CPU utilisation", "% of one core", [](const resource_point& p) { return p.cpu_pct; });
        if (gpu_mem)
            out += chart("GPU memory", "MiB",
                         [&](const resource_point& p) { return p.gpu_mem_bytes > 0 ? p.gpu_mem_bytes / mib : nan; });
        if (gpu_util)
            out += chart("GPU utilisation", "%", [](const resource_point& p) { return p.gpu_util_pct; });
        if (power)
            out += chart("Power", power_source.empty() ? "W" : "W (" + power_source + ")",
                         [&](const resource_point& p) { return p.power_w.value_or(nan); });
        out += "</div>";
        if (!rss && !cpu)
            out += "<p class=\"note\">Memory and CPU of this backend's process not measured (no server "
                   "process to follow).</p>";
        else if (!runs.front()->monitored_process.empty() && runs.front()->monitored_process != "self")
            out += fmt::format("<p class=\"note\">Memory and CPU of its server/worker process, {}.</p>",
                               escape(runs.front()->monitored_process));
        out += "</details>";
    }
    return out + "</section>";
}

std::string stat_cell(const summary& s, int decimals) { return format_mean_std(s.mean, s.std, s.n, decimals); }
std::string checked_cell(const group_summary& g, const char* metric, const summary& s) {
    return g.invalid.count(metric) ? stat_cell(s, 1) + " INVALID" : stat_cell(s, 1);
}

std::string tables_section(const bench_report& r, const std::vector<group_summary>& groups) {
    std::string out = "<section id=\"tables\"><h2>Results tables</h2>";
    if (!groups.empty()) {
        text_table t;
        auto any = [&](auto pred) { return std::any_of(groups.begin(), groups.end(), pred); };
        const bool gpu_mem = any([](const group_summary& g) { return g.gpu_mem_bytes.max > 0; });
        const bool gpu_util = any([](const group_summary& g) { return g.gpu_util_pct.n > 0; });
        const bool energy = any([](const group_summary& g) { return g.energy_j_per_token.n > 0; });
        const char* na = "n/a";
        t.headers = {"backend", "model", "runs", "latency ms", "min", "max", "p50", "p95", "TTFT ms",
                     "TTFT p95", "prefill tok/s", "decode tok/s", "tokens out"};
        // One model for every group: named once in the heading, not in a column of repeats.
        const bool one_model = std::all_of(groups.begin(), groups.end(),
                                           [&](const group_summary& g) { return g.model == groups.front().model; });
        t.right_align.assign(t.headers.size(), true);
        t.right_align[0] = t.right_align[1] = false;
        // Resources in a table of their own, so neither is wider than the page.
        text_table res;
        res.headers = {"backend", "model", "peak RSS MiB", "CPU %"};
        if (gpu_mem) res.headers.push_back("GPU MiB");
        if (gpu_util) res.headers.push_back("GPU %");
        if (energy) {
            res.headers.push_back("mean W");
            res.headers.push_back("J/token");
        }
        res.headers.push_back("process");
        res.headers.push_back("power from");
        res.right_align.assign(res.headers.size(), true);
        res.right_align[0] = res.right_align[1] = false;
        res.right_align[res.headers.size() - 2] = res.right_align.back() = false;
        for (const auto& g : groups) {
            const bool estimated = std::any_of(r.samples.begin(), r.samples.end(), [&](const run_sample& s) {
                return s.backend == g.backend && s.model == g.model && s.n_gen_tokens_estimated;
            });
            std::string n_runs = std::to_string(g.n_runs);
            if (g.n_failed) n_runs += fmt::format(" ({} failed)", g.n_failed);
            t.rows.push_back({g.backend, model_label(g.model), n_runs,
                              checked_cell(g, metric_latency, g.latency_ms), format_number(g.latency_ms.min, 1),
                              format_number(g.latency_ms.max, 1), format_number(g.latency_ms.p50, 1),
                              format_number(g.latency_ms.p95, 1), checked_cell(g, metric_ttft, g.ttft_ms),
                              format_number(g.ttft_ms.p95, 1), checked_cell(g, metric_prefill, g.prefill_tokens_per_s),
                              checked_cell(g, metric_decode, g.decode_tokens_per_s),
                              (estimated ? "~" : "") + format_number(g.n_gen_tokens.mean, 1)});
            std::string process, power_from;
            std::vector<double> watts;
            for (const auto& s : r.samples) {
                if (s.backend != g.backend || s.model != g.model || !s.error.empty()) continue;
                if (process.empty()) process = s.monitored_process;
                if (power_from.empty()) power_from = s.power_source;
                if (s.mean_power_w) watts.push_back(*s.mean_power_w);
            }
            summary w = summarize(watts);
            std::vector<std::string> row = {g.backend, model_label(g.model),
                                            g.peak_rss_bytes.n > 0 ? format_number(g.peak_rss_bytes.max / mib, 1) : na,
                                            g.cpu_pct.n > 0 ? format_number(g.cpu_pct.mean, 0) : na};
            if (gpu_mem) row.push_back(g.gpu_mem_bytes.max > 0 ? format_number(g.gpu_mem_bytes.max / mib, 1) : na);
            if (gpu_util) row.push_back(g.gpu_util_pct.n > 0 ? format_number(g.gpu_util_pct.mean, 0) : na);
            if (energy) {
                row.push_back(w.n > 0 ? format_number(w.mean, 1) : na);
                row.push_back(g.energy_j_per_token.n > 0 ? stat_cell(g.energy_j_per_token, 3) : na);
            }
            row.push_back(process.empty() ? "not measured" : process == "self" ? "edgellm (in-process)" : process);
            row.push_back(power_from.empty() ? na : power_from);
            res.rows.push_back(std::move(row));
        }
        std::string of = " per backend and model";
        if (one_model) {
            of = " per backend, model " + escape(model_label(groups.front().model));
            for (auto* table : {&t, &res}) {
                table->headers.erase(table->headers.begin() + 1);
                table->right_align.erase(table->right_align.begin() + 1);
                for (auto& row : table->rows) row.erase(row.begin() + 1);
            }
        }
        out += "<h3>Results" + of + "</h3>" + html_table(t);
        out += "<h3>Resources" + of + "</h3>" + html_table(res);
        auto notes = sanity_notes(r, groups);
        for (const auto& n : resource_notes(r)) notes.push_back(n);
        if (!notes.empty()) {
            out += "<ul class=\"note\">";
            for (const auto& n : notes) out += "<li>" + escape(n) + "</li>";
            out += "</ul>";
        }

        text_table runs;
        runs.headers = {"backend", "model", "prompt", "run", "tokens in", "tokens out", "TTFT ms", "prefill tok/s",
                        "decode tok/s", "latency ms", "peak RSS MiB", "error"};
        runs.right_align = {false, false, false, true, true, true, true, true, true, true, true, false};
        for (const auto& s : r.samples)
            runs.rows.push_back({s.backend, model_label(s.model), s.prompt_id, std::to_string(s.run_index),
                                 s.n_prompt_tokens > 0 ? std::to_string(s.n_prompt_tokens) : "n/a",
                                 (s.n_gen_tokens_estimated ? "~" : "") + std::to_string(s.n_gen_tokens),
                                 format_number(s.ttft_ms, 1), format_number(s.prefill_tokens_per_s, 1),
                                 format_number(s.decode_tokens_per_s, 1), format_number(s.latency_ms, 1),
                                 format_number(s.peak_rss_bytes / mib, 1), s.error});
        std::vector<bool> err_col(runs.headers.size(), false);
        err_col.back() = true;
        out += fmt::format("<details><summary>All {} runs</summary>{}</details>", r.samples.size(),
                           html_table(runs, err_col));
    }
    if (!r.micro.empty()) {
        text_table t;
        t.headers = {"backend", "model", "threads", "batch", "ngl", "depth", "test", "reps", "t/s", "min", "max"};
        t.right_align = {false, false, true, true, true, true, false, true, true, true, true};
        for (const auto& m : r.micro) {
            summary s = summarize(m);
            t.rows.push_back({m.backend, model_label(m.model), std::to_string(m.n_threads), std::to_string(m.n_batch),
                              std::to_string(m.n_gpu_layers), std::to_string(m.n_depth), micro_test_name(m),
                              std::to_string(s.n), m.error.empty() ? stat_cell(s, 2) : "failed: " + m.error,
                              format_number(s.min, 2), format_number(s.max, 2)});
        }
        out += "<h3>Prefill and decode tests</h3>" + html_table(t);
    }
    if (!r.sweeps.empty()) {
        text_table t;
        t.headers = {"backend", "model", "sweep", "n", "requests", "latency ms", "p95 ms", "wall ms", "aggregate tok/s"};
        t.right_align = {false, false, false, true, true, true, true, true, true};
        for (const auto& p : r.sweeps) {
            summary s = summarize(p);
            t.rows.push_back({p.backend, model_label(p.model), p.kind, std::to_string(p.n_parallel), std::to_string(s.n),
                              p.error.empty() ? stat_cell(s, 1) : "failed: " + p.error, format_number(s.p95, 1),
                              format_number(p.wall_ms, 1), format_number(aggregate_tokens_per_s(p), 1)});
        }
        out += "<h3>Sweeps</h3>" + html_table(t);
    }
    return out + "</section>";
}

std::string samples_section(const bench_report& r, const std::vector<group_summary>& groups) {
    std::string items;
    for (const auto& g : groups) {
        std::vector<std::string> seen;
        for (const auto& s : r.samples) {
            if (s.backend != g.backend || s.model != g.model || !s.error.empty() || s.output_sample.empty()) continue;
            if (std::find(seen.begin(), seen.end(), s.prompt_id) != seen.end()) continue;
            seen.push_back(s.prompt_id);
            items += fmt::format("<div class=\"sample\"><div class=\"meta\">{} \u00b7 prompt {} \u00b7 {} tokens in, {} "
                                 "out</div><pre>{}</pre></div>",
                                 escape(g.label()), escape(s.prompt_id),
                                 s.n_prompt_tokens > 0 ? std::to_string(s.n_prompt_tokens) : "n/a",
                                 (s.n_gen_tokens_estimated ? "~" : "") + std::to_string(s.n_gen_tokens),
                                 escape(s.output_sample));
        }
    }
    if (items.empty()) return "";
    return "<section id=\"samples\"><h2>Sample outputs</h2><p class=\"note\">First successful run of each prompt.</p>" +
           items + "</section>";
}

}  // namespace

std::string render_html(const bench_report& r) {
    auto groups = checked_groups(r);
    color_map colors;
    for (const auto& g : groups) colors.of(g.backend);
    for (const auto& m : r.micro) colors.of(m.backend);
    for (const auto& p : r.sweeps) colors.of(p.backend);

    std::string subtitle = fmt::format("{} \u00b7 mode {} \u00b7 {} backend(s) \u00b7 {} model(s)", r.created_utc,
                                       r.settings.mode, colors.backends.size(),
                                       std::max(r.settings.models.size(), size_t(groups.empty() ? 0 : 1)));
    std::string out =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        // No scripts, no network: the report must open offline and cannot leak or run anything.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">";
    out += fmt::format("<meta name=\"generator\" content=\"edgellm {}\"><title>edgellm benchmark {}</title>",
                       escape(r.build.version), escape(r.created_utc));
    out += "<style>";
    out += style;
    out += "</style></head><body>";
    out += fmt::format("<header><h1>edgellm benchmark</h1><p>{}</p></header><main>", escape(subtitle));
    out += system_section(r);
    out += prompt_section(r, groups, colors);
    out += micro_section(r);
    out += sweep_section(r, colors);
    out += resource_section(r, groups);
    out += tables_section(r, groups);
    out += samples_section(r, groups);
    out += fmt::format("</main><footer>schema {} \u00b7 generated by edgellm {}</footer></body></html>\n",
                       escape(r.schema), escape(r.build.version));
    return out;
}

}  // namespace edgellm::bench
