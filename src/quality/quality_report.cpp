// Renderings of the quality table: console, Markdown, JSON, and HTML with two scatter charts
// (size vs quality, speed vs quality) drawn by the bench report's SVG code.
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/svg_chart.h"
#include "core/units.h"
#include "quality/quality.h"

namespace edgellm::quality {
namespace {

struct column {
    const char* head;
    std::string (*cell)(const quality_row&);
};

std::string mib(uint64_t b) { return fmt::format("{:.1f}", static_cast<double>(b) / (1024.0 * 1024.0)); }

const std::vector<column>& columns() {
    static const std::vector<column> k = {
        {"type", [](const quality_row& r) { return r.type; }},
        {"size MiB", [](const quality_row& r) { return mib(r.file_bytes); }},
        {"bits/weight", [](const quality_row& r) { return fmt::format("{:.2f}", r.bits_per_weight); }},
        {"PPL", [](const quality_row& r) { return fmt::format("{:.4f} ± {:.4f}", r.ppl, r.ppl_stderr); }},
        {"ΔPPL %", [](const quality_row& r) { return r.is_base ? std::string("-") : fmt::format("{:+.2f}", r.dppl_pct); }},
        {"KLD mean", [](const quality_row& r) { return r.is_base ? std::string("-") : fmt::format("{:.6f}", r.kld_mean); }},
        {"KLD p99", [](const quality_row& r) { return r.is_base ? std::string("-") : fmt::format("{:.5f}", r.kld_p99); }},
        {"same top-1 %", [](const quality_row& r) { return r.is_base ? std::string("-") : fmt::format("{:.2f}", r.top1_pct); }},
        {"prefill t/s", [](const quality_row& r) { return fmt::format("{:.1f}", r.prefill_tps); }},
        {"decode t/s", [](const quality_row& r) { return fmt::format("{:.2f}", r.decode_tps); }},
        {"peak RSS MiB", [](const quality_row& r) { return mib(r.peak_rss_bytes); }},
        {"quantize s", [](const quality_row& r) {
             return r.is_base ? std::string("-") : r.cached ? std::string("cached") : fmt::format("{:.1f}", r.quantize_s);
         }},
    };
    return k;
}

size_t display_width(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count UTF-8 code points
    return n;
}

std::string settings_line(const quality_report& r) {
    const auto& o = r.opts;
    return fmt::format("base {} ({}, {} parameters); perplexity on {} with -c {} -b {}{}, {} tokens scored per model; "
                       "speed pp{} / tg{} ({} runs); peak RSS of the speed run; {}",
                       o.base, r.base_type, format_count(r.n_params), o.text_file, o.n_ctx, o.n_batch,
                       o.n_chunks > 0 ? fmt::format(", {} chunks", o.n_chunks) : std::string(), r.n_scored,
                       o.n_prompt, o.n_gen, o.runs, r.created_utc) +
           (r.base_quantized ? fmt::format("\nwarning: the base is itself quantized ({}): each type was re-quantized "
                                           "from it, so the figures are relative to {}, not to the original model",
                                           r.base_type, r.base_type)
                             : std::string());
}

}  // namespace

std::string render_quality_text(const quality_report& r) {
    const auto& cols = columns();
    std::vector<size_t> w(cols.size());
    for (size_t c = 0; c < cols.size(); ++c) {
        w[c] = display_width(cols[c].head);
        for (const auto& row : r.rows) w[c] = std::max(w[c], display_width(cols[c].cell(row)));
    }
    auto line = [&](auto cell) {
        std::string s;
        for (size_t c = 0; c < cols.size(); ++c) {
            const std::string v = cell(c);
            const std::string pad(w[c] - display_width(v), ' ');
            s += c == 0 ? v + pad : "  " + pad + v;
        }
        return s + "\n";
    };
    std::string out = settings_line(r) + "\n\n";
    out += line([&](size_t c) { return std::string(cols[c].head); });
    out += line([&](size_t c) { return std::string(w[c], '-'); });
    for (const auto& row : r.rows) out += line([&](size_t c) { return cols[c].cell(row); });
    return out;
}

std::string render_quality_markdown(const quality_report& r) {
    const auto& cols = columns();
    std::string out = "# Quantization quality: " + r.opts.base + "\n\n" + settings_line(r) + "\n\n|";
    for (const auto& c : cols) out += std::string(" ") + c.head + " |";
    out += "\n|";
    for (size_t c = 0; c < cols.size(); ++c) out += c == 0 ? "---|" : "---:|";
    out += "\n";
    for (const auto& row : r.rows) {
        out += "|";
        for (const auto& c : cols) out += " " + c.cell(row) + " |";
        out += "\n";
    }
    return out;
}

std::string render_quality_json(const quality_report& r) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& x : r.rows)
        rows.push_back({{"type", x.type},           {"path", x.path},
                        {"is_base", x.is_base},     {"file_bytes", x.file_bytes},
                        {"bits_per_weight", x.bits_per_weight},
                        {"ppl", x.ppl},             {"ppl_stderr", x.ppl_stderr},
                        {"dppl_pct", x.dppl_pct},   {"kld_mean", x.kld_mean},
                        {"kld_p99", x.kld_p99},     {"top1_pct", x.top1_pct},
                        {"prefill_tokens_per_s", x.prefill_tps}, {"decode_tokens_per_s", x.decode_tps},
                        {"peak_rss_bytes", x.peak_rss_bytes},    {"quantize_s", x.quantize_s},
                        {"cached", x.cached}});
    const auto& o = r.opts;
    nlohmann::json j = {{"schema", "edgellm.quality/v1"},
                        {"created_utc", r.created_utc},
                        {"base", o.base},
                        {"base_type", r.base_type},
                        {"base_quantized", r.base_quantized},
                        {"n_params", r.n_params},
                        {"text_file", o.text_file},
                        {"n_ctx", o.n_ctx},
                        {"n_batch", o.n_batch},
                        {"n_chunks", o.n_chunks},
                        {"n_scored", r.n_scored},
                        {"n_prompt", o.n_prompt},
                        {"n_gen", o.n_gen},
                        {"runs", o.runs},
                        {"rows", rows}};
    return j.dump(2) + "\n";
}

std::string render_quality_html(const quality_report& r) {
    namespace svg = bench::svg;
    auto scatter = [&](const char* title, const char* x_label, double (*x)(const quality_row&)) {
        svg::line_chart c;
        c.title = title;
        c.x_label = x_label;
        c.y_label = "perplexity (lower is better)";
        c.y_from_zero = false;
        for (size_t i = 0; i < r.rows.size(); ++i) {
            c.series.push_back({r.rows[i].type, {x(r.rows[i])}, {r.rows[i].ppl}});
            c.colors.push_back(static_cast<int>(i));
        }
        return svg::render_line_chart(c);
    };
    std::string table = "<table><thead><tr>";
    for (const auto& c : columns()) table += "<th>" + svg::escape(c.head) + "</th>";
    table += "</tr></thead><tbody>";
    for (const auto& row : r.rows) {
        table += "<tr>";
        for (const auto& c : columns()) table += "<td>" + svg::escape(c.cell(row)) + "</td>";
        table += "</tr>";
    }
    table += "</tbody></table>";
    return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>edgellm quality: " +
           svg::escape(r.opts.base) +
           "</title><style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
           "td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:1em}"
           "</style></head><body><h1>Quantization quality</h1><p>" +
           svg::escape(settings_line(r)) + "</p>" + table + "<div class=\"charts\">" +
           scatter("Size vs quality", "file size (MiB)",
                   [](const quality_row& q) { return static_cast<double>(q.file_bytes) / (1024.0 * 1024.0); }) +
           scatter("Decode speed vs quality", "decode tokens/s", [](const quality_row& q) { return q.decode_tps; }) +
           "</div></body></html>\n";
}

}  // namespace edgellm::quality
