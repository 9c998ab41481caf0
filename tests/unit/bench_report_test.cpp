// Benchmark reporters: JSON round trip and errors, CSV quoting, console/Markdown tables, SVG
// charts (nice ticks, escaping, series, error bars) and the HTML dashboard's sections.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "bench/html_report.h"
#include "bench/report_json.h"
#include "bench/report_text.h"
#include "bench/svg_chart.h"
#include "core/error.h"
#include "test_util.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

size_t count(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
    return n;
}

bench_report small_report() {
    bench_report r;
    r.created_utc = "2026-01-02T03:04:05Z";
    r.system.device = "cpu";
    r.system.cpu = "Test CPU";
    r.build.version = "9.9.9";
    r.settings.backends = {"native", "llama_cpp"};
    r.settings.models = {"m.gguf"};
    r.settings.n_runs = 2;
    for (const char* backend : {"native", "llama_cpp"}) {
        for (int run = 0; run < 2; ++run) {
            run_sample s;
            s.backend = backend;
            s.model = "m.gguf";
            s.prompt_id = "short";
            s.run_index = run;
            s.latency_ms = (backend[0] == 'n' ? 100.0 : 150.0) + run * 10.0;
            s.ttft_ms = 12.5;
            s.decode_tokens_per_s = 33.0 + run;
            s.prefill_tokens_per_s = 400.0;
            s.n_prompt_tokens = 7;
            s.n_gen_tokens = 17;
            s.peak_rss_bytes = 123456789;
            s.output_sample = "a, \"quoted\" <b>bold</b>\nline";
            s.resources = {{0.0, 1000, 50.0, 0, 0.0, std::nullopt}, {50.0, 2000, 99.5, 0, 0.0, 4.5}};
            if (run == 1) s.energy_j_per_token = 0.25;
            r.samples.push_back(s);
        }
    }
    micro_result m;
    m.backend = "native";
    m.model = "m.gguf";
    m.n_prompt = 33;
    m.n_gen = 17;
    m.n_threads = 3;
    m.tokens_per_s = {10, 12, 14};
    r.micro.push_back(m);
    sweep_point p;
    p.backend = "native";
    p.model = "m.gguf";
    p.n_parallel = 3;
    p.latency_ms = {200, 220, 240};
    p.wall_ms = 250;
    p.n_gen_tokens = 51;
    r.sweeps.push_back(p);
    return r;
}

}  // namespace

TEST(BenchJson, RoundTripKeepsEverySample) {
    bench_report r = small_report();
    auto j = report_to_json(r);
    EXPECT_EQ(j["schema"], "edgellm.bench/v1");
    EXPECT_EQ(j["samples"].size(), 4u);
    EXPECT_TRUE(j["samples"][0]["energy_j_per_token"].is_null());
    EXPECT_DOUBLE_EQ(j["samples"][1]["energy_j_per_token"].get<double>(), 0.25);
    EXPECT_EQ(j["micro"][0]["test"], "pp33+tg17");
    EXPECT_DOUBLE_EQ(j["micro"][0]["summary"]["mean"].get<double>(), 12.0);
    EXPECT_DOUBLE_EQ(j["sweeps"][0]["aggregate_tokens_per_s"].get<double>(), 204.0);
    EXPECT_EQ(j["summary"]["groups"].size(), 2u);
    EXPECT_DOUBLE_EQ(j["summary"]["groups"][0]["latency_ms"]["mean"].get<double>(), 105.0);

    bench_report back = report_from_json(nlohmann::json::parse(render_json(r)));
    ASSERT_EQ(back.samples.size(), r.samples.size());
    EXPECT_EQ(back.samples[3].output_sample, r.samples[3].output_sample);
    EXPECT_EQ(back.samples[3].latency_ms, r.samples[3].latency_ms);
    EXPECT_EQ(back.samples[1].energy_j_per_token, r.samples[1].energy_j_per_token);
    EXPECT_FALSE(back.samples[0].energy_j_per_token.has_value());
    ASSERT_EQ(back.samples[0].resources.size(), 2u);
    EXPECT_EQ(back.samples[0].resources[1].power_w, 4.5);
    EXPECT_EQ(back.micro[0].tokens_per_s, r.micro[0].tokens_per_s);
    EXPECT_EQ(back.sweeps[0].n_gen_tokens, 51);
    EXPECT_EQ(back.settings.backends, r.settings.backends);
    // Writing what was read gives the same document.
    EXPECT_EQ(render_json(back), render_json(r));
}

TEST(BenchJson, OptionsAreKeptAndShownOnTheSettingsLine) {
    bench_report r = small_report();
    r.settings.options = {{"deterministic", "1"}, {"model_draft", "d.gguf"}};
    bench_report back = report_from_json(report_to_json(r));
    EXPECT_EQ(back.settings.options, r.settings.options);
    const std::string text = render_console(r);
    EXPECT_NE(text.find("| deterministic |"), std::string::npos) << text;
    EXPECT_NE(text.find("| model_draft d.gguf"), std::string::npos) << text;
    auto j = report_to_json(r);
    j["settings"]["options"]["deterministic"] = 1;
    try {
        report_from_json(j);
        FAIL() << "a non-string option was accepted";
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("$.settings.options.deterministic must be a string"), std::string::npos)
            << e.what();
    }
}

TEST(BenchJson, NaNBecomesNull) {
    bench_report r;
    run_sample s;
    s.backend = "b";
    s.model = "m";
    s.ttft_ms = std::nan("");
    r.samples.push_back(s);
    auto j = report_to_json(r);
    EXPECT_TRUE(j["samples"][0]["ttft_ms"].is_null());
    EXPECT_TRUE(std::isnan(report_from_json(j).samples[0].ttft_ms));
}

TEST(BenchJson, BadDocumentsGiveClearErrors) {
    auto j = report_to_json(small_report());
    auto expect_error = [](const nlohmann::json& doc, const std::string& part) {
        try {
            report_from_json(doc);
            FAIL() << "expected an error mentioning " << part;
        } catch (const error& e) {
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
    };
    auto foreign = j;
    foreign["schema"] = "edgellm.bench/v0";
    expect_error(foreign, "edgellm.bench/v0");
    auto missing = j;
    missing["samples"][2].erase("latency_ms");
    expect_error(missing, "$.samples[2].latency_ms");
    auto mistyped = j;
    mistyped["samples"][1]["n_gen_tokens"] = "many";
    expect_error(mistyped, "$.samples[1].n_gen_tokens must be an integer");
    auto negative = j;
    negative["samples"][0]["peak_rss_bytes"] = -5;
    expect_error(negative, "non-negative");
    expect_error(nlohmann::json::array(), "$ must be an object");

    auto dir = test::temp_dir("bench-json");
    { std::ofstream(dir / "bad.json") << "{ not json"; }
    try {
        load_report((dir / "bad.json").string());
        FAIL();
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
    }
    EXPECT_THROW(load_report((dir / "absent.json").string()), error);
    std::filesystem::remove_all(dir);
}

TEST(BenchCsv, QuotesFieldsAndHasOneRowPerRecord) {
    std::string csv = render_csv(small_report());
    std::istringstream in(csv);
    std::string header;
    std::getline(in, header);
    EXPECT_EQ(count(header, ",") + 1, csv_columns().size());
    EXPECT_EQ(header.rfind("kind,backend,model", 0), 0u);
    // 4 runs + 1 micro + 1 sweep; the sample text has a quoted newline, so count record starts.
    EXPECT_EQ(count(csv, "\nrun,"), 4u);
    EXPECT_EQ(count(csv, "\nmicro,"), 1u);
    EXPECT_EQ(count(csv, "\nsweep,"), 1u);
    EXPECT_NE(csv.find("\"a, \"\"quoted\"\" <b>bold</b>\nline\""), std::string::npos);
}

TEST(BenchText, ConsoleTableIsAlignedAndShowsStats) {
    std::string out = render_console(small_report());
    EXPECT_NE(out.find("105.0 ± 7.1"), std::string::npos) << out;  // mean ± sample std of 100, 110
    EXPECT_NE(out.find("latency: best native / m.gguf (105.0 ms), worst llama_cpp / m.gguf (155.0 ms), 1.48x"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("pp33+tg17"), std::string::npos);
    // Every row of the first table has the same display width as its rule line.
    text_table t;
    t.headers = {"name", "value"};
    t.right_align = {false, true};
    t.rows = {{"a", "1.0 ± 0.1"}, {"longer name", "12345.0"}};
    std::string table = t.render_console();
    std::istringstream lines(table);
    std::string line;
    std::vector<std::string> all;
    while (std::getline(lines, line)) all.push_back(line);
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all[1], "-----------  ---------");
    EXPECT_EQ(all[2], "a            1.0 ± 0.1");
    EXPECT_EQ(all[3], "longer name    12345.0");
}

TEST(BenchText, MarkdownEscapesPipes) {
    text_table t;
    t.headers = {"a|b", "n"};
    t.right_align = {false, true};
    t.rows = {{"x|y", "1"}};
    EXPECT_EQ(t.render_markdown(), "| a\\|b | n |\n| --- | ---: |\n| x\\|y | 1 |\n");
    std::string md = render_markdown(small_report());
    EXPECT_NE(md.find("## Results per backend and model"), std::string::npos);
    EXPECT_NE(md.find("## Prefill / decode tests"), std::string::npos);
}

TEST(BenchOutput, WritesFilesAndReportsFailures) {
    auto dir = test::temp_dir("bench-out");
    write_output((dir / "r.md").string(), "hello\n");
    std::ifstream in(dir / "r.md");
    std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(got, "hello\n");
    EXPECT_THROW(write_output((dir / "no/such/dir/r.md").string(), "x"), error);
    std::filesystem::remove_all(dir);
}

TEST(BenchSvg, NiceTicksUseOneTwoFiveSteps) {
    EXPECT_DOUBLE_EQ(svg::nice_step(0.7), 1.0);
    EXPECT_DOUBLE_EQ(svg::nice_step(1.3), 2.0);
    EXPECT_DOUBLE_EQ(svg::nice_step(3.0), 5.0);
    EXPECT_DOUBLE_EQ(svg::nice_step(7.0), 10.0);
    EXPECT_DOUBLE_EQ(svg::nice_step(0.031), 0.05);
    EXPECT_DOUBLE_EQ(svg::nice_step(2.0), 2.0);

    auto t = svg::nice_ticks(0, 2828);
    EXPECT_DOUBLE_EQ(t.step, 1000.0);
    EXPECT_DOUBLE_EQ(t.lo, 0.0);
    EXPECT_DOUBLE_EQ(t.hi, 3000.0);
    EXPECT_EQ(t.values.size(), 4u);

    auto u = svg::nice_ticks(13, 97);
    EXPECT_DOUBLE_EQ(u.step, 20.0);
    EXPECT_DOUBLE_EQ(u.lo, 0.0);
    EXPECT_DOUBLE_EQ(u.hi, 100.0);

    auto flat = svg::nice_ticks(5, 5);  // one value: still a usable axis around it
    EXPECT_LT(flat.lo, 5.0);
    EXPECT_GT(flat.hi, 5.0);
    auto zero = svg::nice_ticks(0, 0);
    EXPECT_DOUBLE_EQ(zero.lo, 0.0);
    EXPECT_GT(zero.hi, 0.0);
    auto bad = svg::nice_ticks(std::nan(""), 1);
    EXPECT_FALSE(bad.values.empty());

    EXPECT_EQ(svg::format_tick(0.30000000000000004, 0.1), "0.3");
    EXPECT_EQ(svg::format_tick(2000, 1000), "2k");
    EXPECT_EQ(svg::format_tick(1500, 500), "1500");
    EXPECT_EQ(svg::format_tick(-1e-17, 0.5), "0");
    EXPECT_EQ(svg::format_tick(0.05, 0.05), "0.05");
}

TEST(BenchSvg, EscapesTextAndDropsControlCharacters) {
    EXPECT_EQ(svg::escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    EXPECT_EQ(svg::escape(std::string("a\x01" "b\n", 4)), "ab\n");
}

TEST(BenchSvg, BarChartDrawsEverySeriesWithErrorBars) {
    svg::bar_chart c;
    c.title = "Latency <ms>";
    c.y_label = "ms";
    c.categories = {"m1", "m2", "m3"};
    c.series = {{"native", {10, 20, 30}, {1, 2, 3}}, {"x&y", {15, std::nan(""), 35}, {}}};
    std::string s = svg::render_bar_chart(c);
    EXPECT_EQ(s.rfind("<svg", 0), 0u);
    EXPECT_EQ(count(s, "<svg"), 1u);
    EXPECT_EQ(count(s, "</svg>"), 1u);
    EXPECT_EQ(count(s, "class=\"series\""), 2u);
    EXPECT_EQ(count(s, "class=\"bar\""), 5u);  // the NaN bar is left out
    EXPECT_EQ(count(s, "class=\"error-bar\""), 3u);
    EXPECT_NE(s.find("Latency &lt;ms&gt;"), std::string::npos);
    EXPECT_NE(s.find("data-series=\"x&amp;y\""), std::string::npos);
    EXPECT_EQ(s.find("<ms>"), std::string::npos);
    EXPECT_NE(s.find(">40</text>"), std::string::npos);  // y axis reaches the nice tick above 35
}

TEST(BenchSvg, LineChartAndEmptyCharts) {
    svg::line_chart c;
    c.title = "Throughput";
    c.x_label = "batch size";
    c.log2_x = true;
    c.series = {{"a", {1, 2, 4, 8}, {10, 18, 30, 41}}, {"b", {1, 2, 4, 8}, {9, 15, std::nan(""), 35}}};
    std::string s = svg::render_line_chart(c);
    EXPECT_EQ(count(s, "class=\"series\""), 2u);
    EXPECT_EQ(count(s, "class=\"line\""), 2u);
    EXPECT_EQ(count(s, "class=\"point\""), 7u);  // NaN point skipped
    for (const char* tick : {">1</text>", ">2</text>", ">4</text>", ">8</text>"})
        EXPECT_NE(s.find(tick), std::string::npos) << tick;

    svg::line_chart empty;
    empty.title = "Nothing";
    EXPECT_NE(svg::render_line_chart(empty).find("no data"), std::string::npos);
    svg::bar_chart no_bars;
    no_bars.categories = {"a"};
    no_bars.series = {{"s", {std::nan("")}, {}}};
    EXPECT_NE(svg::render_bar_chart(no_bars).find("no data"), std::string::npos);
}

TEST(BenchHtml, DashboardHasSectionsChartsAndNoScript) {
    std::string html = render_html(small_report());
    EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
    for (const char* id : {"id=\"system\"", "id=\"results\"", "id=\"micro\"", "id=\"sweeps\"", "id=\"resources\"",
                           "id=\"tables\"", "id=\"samples\""})
        EXPECT_NE(html.find(id), std::string::npos) << id;
    // 5 bars (latency, TTFT, decode, prefill, RSS) + micro + 2 sweep lines + 2 backends x
    // (RSS, CPU, power: one point has a reading) resource charts; no GPU charts since nothing
    // used a GPU.
    EXPECT_EQ(count(html, "<svg"), 14u);
    EXPECT_EQ(count(html, "<script"), 0u);
    EXPECT_EQ(count(html, "http://") + count(html, "https://"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
    EXPECT_NE(html.find("&lt;b&gt;bold&lt;/b&gt;"), std::string::npos);
    EXPECT_EQ(html.find("<b>bold</b>"), std::string::npos);
    EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);

    bench_report empty;
    std::string bare = render_html(empty);
    EXPECT_NE(bare.find("id=\"system\""), std::string::npos);
    EXPECT_EQ(count(bare, "<svg"), 0u);
}

TEST(BenchText, InvalidUtf8BecomesReplacementCharacters) {
    EXPECT_EQ(sanitize_utf8("ok \xC3\xA9 \xE2\x82\xAC"), "ok \xC3\xA9 \xE2\x82\xAC");  // é €
    EXPECT_EQ(sanitize_utf8("a\xB9z"), "a\xEF\xBF\xBDz");                               // stray continuation byte
    EXPECT_EQ(sanitize_utf8("cut \xE2\x82"), "cut \xEF\xBF\xBD\xEF\xBF\xBD");            // truncated sequence
    EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                   // overlong '/'
    EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");   // surrogate
    EXPECT_EQ(svg::escape("<\xFF>"), "&lt;\xEF\xBF\xBD&gt;");
}

namespace {

// small_report() where llama_cpp ran behind a server nobody could follow (no RSS/CPU) and
// native ran on a GPU with measured power; one llama_cpp count was estimated from chunks.
bench_report mixed_resources_report() {
    bench_report r = small_report();
    for (auto& s : r.samples) {
        if (s.backend == "native") {
            s.monitored_process = "self";
            s.gpu_mem_bytes = 300ull << 20;
            s.gpu_util_pct = 55.0;
            s.energy_j = 3.4;
            s.energy_j_per_token = 0.2;
            s.mean_power_w = 21.0;
            s.power_source = "nvml gpu";
            for (auto& p : s.resources) {
                p.gpu_mem_bytes = 300ull << 20;
                p.gpu_util_pct = 55.0;
                p.power_w = 21.0;
            }
        } else {
            s.monitored_process = "";
            s.peak_rss_bytes = 0;
            s.cpu_pct = std::nan("");
            s.gpu_util_pct = std::nan("");
            s.n_gen_tokens_estimated = true;
            s.energy_j_per_token.reset();
            s.resources.clear();
        }
    }
    return r;
}

// The cells of the table row that starts with `first`, split on `sep`.
std::vector<std::string> row_cells(const std::string& text, const std::string& first, char sep) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto start = line.find_first_not_of(" |");
        if (start == std::string::npos || line.compare(start, first.size(), first) != 0) continue;
        std::vector<std::string> cells;
        std::string cell;
        std::istringstream ls(line);
        while (std::getline(ls, cell, sep)) {
            auto a = cell.find_first_not_of(' ');
            auto b = cell.find_last_not_of(' ');
            if (a != std::string::npos) cells.push_back(cell.substr(a, b - a + 1));
        }
        return cells;
    }
    return {};
}

}  // namespace

TEST(BenchResources, ConsoleAndMarkdownShowNaAndOnlyMeasuredColumns) {
    std::string plain = render_console(small_report());
    EXPECT_EQ(plain.find("GPU mem MiB"), std::string::npos);  // nobody measured it: no column
    EXPECT_NE(plain.find("J/token"), std::string::npos);  // one run per group has energy
    EXPECT_EQ(plain.find("GPU %"), std::string::npos);

    bench_report r = mixed_resources_report();
    for (const std::string& text : {render_console(r), render_markdown(r)}) {
        EXPECT_NE(text.find("GPU mem MiB"), std::string::npos);
        EXPECT_NE(text.find("GPU %"), std::string::npos);
        EXPECT_NE(text.find("J/token"), std::string::npos);
        EXPECT_NE(text.find("llama_cpp / m.gguf: memory and CPU not measured"), std::string::npos);
        EXPECT_NE(text.find("llama_cpp / m.gguf: tokens out counted from streamed chunks"), std::string::npos);
        EXPECT_NE(text.find("native / m.gguf: power from nvml gpu"), std::string::npos);
    }
    // Console columns are separated by two or more spaces; md by pipes.
    auto md = render_markdown(r);
    auto native = row_cells(md, "native", '|');
    auto server = row_cells(md, "llama_cpp", '|');
    ASSERT_EQ(native.size(), 13u);
    ASSERT_EQ(server.size(), 13u);
    EXPECT_EQ(native[9], "117.7");   // peak RSS MiB
    EXPECT_EQ(native[10], "300.0");  // GPU mem MiB
    EXPECT_EQ(native[11], "55");     // GPU %
    EXPECT_EQ(native[12], "0.200 ± 0.000");  // J/token
    for (size_t c = 9; c < 13; ++c) EXPECT_EQ(server[c], "n/a") << c;
}

TEST(BenchResources, CsvLeavesUnmeasuredCellsEmpty) {
    std::string csv = render_csv(mixed_resources_report());
    std::istringstream in(csv);
    std::string header, line;
    std::getline(in, header);
    std::vector<std::string> cols = csv_columns();
    auto col = [&](const std::string& name) {
        return static_cast<size_t>(std::find(cols.begin(), cols.end(), name) - cols.begin());
    };
    int n_server = 0;
    while (std::getline(in, line)) {
        if (line.rfind("run,llama_cpp,", 0) != 0) continue;
        ++n_server;
        // No quoted fields before output_sample in these rows, so a plain split is exact there.
        std::vector<std::string> f;
        std::string cell;
        std::istringstream ls(line);
        while (std::getline(ls, cell, ',')) f.push_back(cell);
        for (const char* c : {"peak_rss_bytes", "gpu_mem_bytes", "cpu_pct", "gpu_util_pct", "energy_j_per_token",
                              "energy_j", "mean_power_w", "power_source", "monitored_process"})
            EXPECT_EQ(f.at(col(c)), "") << c;
        EXPECT_EQ(f.at(col("n_gen_tokens_estimated")), "true");
    }
    EXPECT_EQ(n_server, 2);
    EXPECT_NE(csv.find(",3.4,21,nvml gpu,self,false,"), std::string::npos);
}

TEST(BenchResources, HtmlSummaryColumnsAndChartsFollowWhatWasMeasured) {
    std::string html = render_html(mixed_resources_report());
    EXPECT_NE(html.find("<th class=\"num\">J/token</th>"), std::string::npos);
    EXPECT_NE(html.find("<th class=\"num\">GPU MiB</th>"), std::string::npos);
    EXPECT_NE(html.find(">n/a</td>"), std::string::npos);
    EXPECT_NE(html.find(">~17</td>"), std::string::npos);  // estimated count marked
    // native: RSS, CPU, GPU memory, GPU utilisation, power; llama_cpp: none (no series at all).
    for (const char* t : {"GPU memory", "GPU utilisation", "Power"})
        EXPECT_EQ(count(html, std::string("aria-label=\"") + t), 1u) << t;
    EXPECT_NE(html.find("W (nvml gpu)"), std::string::npos);

    std::string plain = render_html(small_report());
    EXPECT_EQ(plain.find("GPU MiB</th>"), std::string::npos);  // nobody measured GPU memory
    EXPECT_EQ(plain.find("GPU %</th>"), std::string::npos);
}

TEST(BenchResources, JsonRoundTripsTheNewFields) {
    bench_report r = mixed_resources_report();
    bench_report back = report_from_json(report_to_json(r));
    for (size_t i = 0; i < r.samples.size(); ++i) {
        EXPECT_EQ(back.samples[i].monitored_process, r.samples[i].monitored_process);
        EXPECT_EQ(back.samples[i].power_source, r.samples[i].power_source);
        EXPECT_EQ(back.samples[i].energy_j, r.samples[i].energy_j);
        EXPECT_EQ(back.samples[i].mean_power_w, r.samples[i].mean_power_w);
        EXPECT_EQ(back.samples[i].n_gen_tokens_estimated, r.samples[i].n_gen_tokens_estimated);
        EXPECT_EQ(std::isnan(back.samples[i].gpu_util_pct), std::isnan(r.samples[i].gpu_util_pct));
    }
    auto j = report_to_json(r);
    EXPECT_TRUE(j["samples"][2]["cpu_pct"].is_null());
    EXPECT_TRUE(j["samples"][0]["resources"][0]["cpu_pct"].is_number());
}
