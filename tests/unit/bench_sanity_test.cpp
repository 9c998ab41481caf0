// The benchmark's sanity rules (bench/sanity.h) on crafted impossible samples, their verdicts in
// the console, JSON and HTML reports (an invalid figure is never ranked best), and edgellm's own
// clock in backend::generate against a backend that reports impossible timings of its own.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "backends/backend.h"
#include "bench/html_report.h"
#include "bench/report_json.h"
#include "bench/report_text.h"
#include "bench/sanity.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

// A plausible run: 33 tokens in 400 ms.
run_sample good(const std::string& backend, int run = 0, double decode = 100.0) {
    run_sample s;
    s.backend = backend;
    s.model = "/m/model.gguf";
    s.prompt_id = "medium";
    s.run_index = run;
    s.ttft_ms = 80;
    s.latency_ms = 400;
    s.prefill_tokens_per_s = 250;
    s.decode_tokens_per_s = decode;
    s.n_prompt_tokens = 20;
    s.n_gen_tokens = 33;
    s.n_gen_pieces = 33;
    s.model_bytes = 100'000'000;  // 100 MB
    return s;
}

bool has_finding(const std::vector<sanity_finding>& f, const std::string& metric, const std::string& part,
                 bool invalid = true) {
    for (const auto& x : f)
        if (x.metric == metric && x.invalid == invalid && x.reason.find(part) != std::string::npos) return true;
    return false;
}

sanity_limits limits_10gbs() {
    sanity_limits lim;
    lim.mem_bandwidth_bytes_per_s = 10e9;  // bound: 10 x 10 GB/s / 100 MB = 1000 tok/s
    lim.n_predict = 64;
    return lim;
}

// The report: llama_cpp took decode from the server's timings of a 1-token run.
bench_report impossible_report() {
    bench_report r;
    r.system.mem_bandwidth_bytes_per_s = 10e9;
    r.settings.mode = "prompts";
    r.settings.n_predict = 64;
    r.samples = {good("native", 0, 104.0), good("native", 1, 101.0), good("llama_cpp", 0, 1'000'000.0),
                 good("llama_cpp", 1, 1500.0), good("llama_cpp_python", 0, 53.0), good("llama_cpp_python", 1, 55.0)};
    r.samples[2].n_gen_tokens = 1;
    r.samples[2].n_gen_pieces = 1;
    r.samples[2].ttft_ms = 0.0;
    return r;
}

}  // namespace

TEST(BenchSanity, PlausibleRunHasNoFindings) {
    EXPECT_TRUE(check_sample(good("native"), limits_10gbs()).empty());
}

TEST(BenchSanity, OneTokenRunHasNoDecodeSpeed) {
    run_sample s = good("llama_cpp");
    s.n_gen_tokens = 1;
    s.n_gen_pieces = 1;
    s.decode_tokens_per_s = 1'000'000.0;
    auto f = check_sample(s, limits_10gbs());
    EXPECT_TRUE(has_finding(f, metric_decode, "1 token(s) generated"));
}

TEST(BenchSanity, ZeroAndNegativeDurationsAreInvalid) {
    run_sample s = good("x");
    s.ttft_ms = 0.0;
    s.latency_ms = -1.0;
    s.prefill_tokens_per_s = std::numeric_limits<double>::infinity();
    auto f = check_sample(s, limits_10gbs());
    EXPECT_TRUE(has_finding(f, metric_ttft, "not positive"));
    EXPECT_TRUE(has_finding(f, metric_latency, "not positive"));
    EXPECT_TRUE(has_finding(f, metric_prefill, "infinite"));

    run_sample late = good("x");
    late.ttft_ms = 500;  // after the last token (400 ms)
    EXPECT_TRUE(has_finding(check_sample(late, limits_10gbs()), metric_ttft, "after the last token"));
}

TEST(BenchSanity, DecodeAboveTheBandwidthBoundIsInvalid) {
    run_sample s = good("x", 0, 1500.0);  // bound is 1000 tok/s
    auto f = check_sample(s, limits_10gbs());
    EXPECT_TRUE(has_finding(f, metric_decode, "above the physical bound 1000.0 tok/s"));
    EXPECT_TRUE(check_sample(good("x", 0, 900.0), limits_10gbs()).empty());
    EXPECT_DOUBLE_EQ(decode_bound_tokens_per_s(100'000'000, limits_10gbs()), 1000.0);

    // Not applied without a measured bandwidth, a model size, or with a GPU (its memory is faster).
    sanity_limits none = limits_10gbs();
    none.mem_bandwidth_bytes_per_s = 0;
    EXPECT_TRUE(check_sample(s, none).empty());
    sanity_limits gpu = limits_10gbs();
    gpu.gpu_present = true;
    EXPECT_TRUE(check_sample(s, gpu).empty());
    run_sample tag = s;
    tag.model_bytes = 0;
    EXPECT_TRUE(check_sample(tag, limits_10gbs()).empty());
}

TEST(BenchSanity, TokenCountsThatContradictTheStreamAreInvalid) {
    run_sample s = good("x");
    s.n_gen_pieces = 40;  // more pieces than tokens
    auto f = check_sample(s, limits_10gbs());
    EXPECT_TRUE(has_finding(f, metric_n_gen, "40 pieces of text were streamed but the backend counted 33"));
    EXPECT_TRUE(has_finding(f, metric_decode, "40 pieces"));

    run_sample over = good("x");
    over.n_gen_tokens = 65;
    over.n_gen_pieces = 65;
    EXPECT_TRUE(has_finding(check_sample(over, limits_10gbs()), metric_n_gen, "more than the 64 asked for"));

    // An estimate (counted from the pieces) cannot contradict them.
    run_sample est = good("x");
    est.n_gen_pieces = 40;
    est.n_gen_tokens_estimated = true;
    EXPECT_FALSE(has_finding(check_sample(est, limits_10gbs()), metric_n_gen, "pieces"));
}

TEST(BenchSanity, ServerTimingsThatDisagreeAreAWarningNotAVerdict) {
    run_sample s = good("llama_cpp");
    s.server_decode_tokens_per_s = 130.0;  // +30% over edgellm's 100
    s.server_prefill_tokens_per_s = 260.0;  // +4%: fine
    auto f = check_sample(s, limits_10gbs());
    ASSERT_EQ(f.size(), 1u);
    EXPECT_TRUE(has_finding(f, metric_decode, "server reports 130.0 tok/s, edgellm's clock 100.0 tok/s (+30%)", false));
}

TEST(BenchSanity, FailedRunsAreNotChecked) {
    run_sample s = good("x");
    s.ttft_ms = 0;
    s.error = "boom";
    EXPECT_TRUE(check_sample(s, limits_10gbs()).empty());
}

TEST(BenchSanity, GroupWithStdLargerThanMeanIsInvalid) {
    bench_report r;
    r.samples = {good("a", 0, 10.0), good("a", 1, 10.0), good("a", 2, 400.0)};  // std 225 > mean 140
    auto g = checked_groups(r);
    ASSERT_EQ(g.size(), 1u);
    ASSERT_TRUE(g[0].invalid.count(metric_decode));
    EXPECT_NE(g[0].invalid.at(metric_decode).find("larger than the mean"), std::string::npos);
    EXPECT_FALSE(g[0].invalid.count(metric_ttft));
}

TEST(BenchSanity, SpreadAcrossDifferentPromptsIsNotASanityProblem) {
    // A short and a long prompt: TTFT 10 and 1000 ms (std 700 > mean 505), consistent per prompt.
    bench_report r;
    for (int run = 0; run < 2; ++run) {
        run_sample a = good("a", run), b = good("a", run);
        a.prompt_id = "short";
        a.ttft_ms = 10 + run;
        b.prompt_id = "long";
        b.ttft_ms = 1000 - run;
        b.latency_ms = 1400;
        r.samples.push_back(a);
        r.samples.push_back(b);
    }
    auto g = checked_groups(r);
    ASSERT_EQ(g.size(), 1u);
    EXPECT_GT(g[0].ttft_ms.std, g[0].ttft_ms.mean);
    EXPECT_TRUE(g[0].invalid.empty()) << g[0].invalid.begin()->second;
}

TEST(BenchSanity, GroupNamesTheFirstInvalidRunAndCountsTheOthers) {
    auto g = checked_groups(impossible_report());
    ASSERT_EQ(g.size(), 3u);
    EXPECT_TRUE(g[0].invalid.empty());
    EXPECT_TRUE(g[2].invalid.empty());
    ASSERT_TRUE(g[1].invalid.count(metric_decode));
    const std::string why = g[1].invalid.at(metric_decode);
    EXPECT_EQ(why.rfind("run 0 (medium): ", 0), 0u) << why;
    EXPECT_NE(why.find("and 1 more run(s)"), std::string::npos) << why;  // run 1: 1500 tok/s > the 1000 bound
    EXPECT_TRUE(g[1].invalid.count(metric_ttft));
}

TEST(BenchSanityRanking, InvalidCellIsNeverBestInExtremes) {
    auto groups = checked_groups(impossible_report());
    for (const auto& e : standard_extremes(groups)) {
        if (e.metric == "decode_tokens_per_s") {
            EXPECT_EQ(e.best, "native / model.gguf");
            EXPECT_EQ(e.worst, "llama_cpp_python / model.gguf");
        }
        if (e.metric == "ttft_ms") EXPECT_EQ(e.best.find("llama_cpp /"), std::string::npos) << e.best;
    }
}

TEST(BenchSanityRanking, ConsoleMarksTheCellAndNeverRanksIt) {
    const std::string out = render_console(impossible_report());
    EXPECT_NE(out.find("decode speed: best native / model.gguf"), std::string::npos) << out;
    EXPECT_EQ(out.find("best llama_cpp /"), std::string::npos) << out;
    EXPECT_NE(out.find("INVALID llama_cpp / model.gguf decode_tokens_per_s: run 0 (medium): 1 token(s) generated"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find(" INVALID"), std::string::npos);
    const std::string md = render_markdown(impossible_report());
    EXPECT_EQ(md.find("best llama_cpp /"), std::string::npos) << md;
}

TEST(BenchSanityRanking, HtmlFindingsSkipTheInvalidCellAndListIt) {
    const std::string html = render_html(impossible_report());
    auto findings = html.substr(html.find("<ul class=\"findings\">"));
    findings = findings.substr(0, findings.find("</ul>"));
    EXPECT_NE(findings.find("decode speed</b>: native / model.gguf is"), std::string::npos) << findings;
    EXPECT_EQ(findings.find("</b>: llama_cpp / model.gguf is"), std::string::npos) << findings;
    EXPECT_NE(html.find("<div class=\"invalid\">"), std::string::npos);
    EXPECT_NE(html.find("INVALID"), std::string::npos);
}

TEST(BenchSanityRanking, JsonCarriesTheVerdicts) {
    auto j = report_to_json(impossible_report());
    const auto& g = j["summary"]["groups"][1];
    EXPECT_EQ(g["backend"], "llama_cpp");
    ASSERT_TRUE(g["invalid"].contains("decode_tokens_per_s"));
    for (const auto& e : j["summary"]["extremes"])
        if (e["metric"] == "decode_tokens_per_s") EXPECT_EQ(e["best"], "native / model.gguf");
}

namespace {

// Streams `n` pieces `gap_ms` apart and claims the server decoded them in 0.001 ms.
class lying_backend final : public backends::backend {
public:
    explicit lying_backend(int n, int gap_ms = 15, std::string finish = "stop")
        : n_(n), gap_ms_(gap_ms), finish_(std::move(finish)) {}
    std::string name() const override { return "liar"; }
    std::string description() const override { return "test"; }
    backends::availability check_available(const backends::backend_settings&) const override { return {true, "", ""}; }
    void load(const backends::backend_settings&) override {}
    void unload() override {}

protected:
    void do_generate(const backends::generation_request&, const std::function<bool(std::string_view)>& emit,
                     backends::generation_result& result) override {
        std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms_));
        for (int i = 0; i < n_; ++i) {
            if (i) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms_));
            emit("x");
        }
        result.stats.n_prompt_tokens = 10;
        result.stats.n_gen_tokens = n_;
        result.stats.backend_prompt_ms = 0.001;
        result.stats.backend_decode_ms = 0.001;
        result.finish_reason = finish_;
    }

private:
    int n_, gap_ms_;
    std::string finish_;
};

}  // namespace

TEST(BackendOwnClock, DecodeComesFromTheStreamNotTheServersTimings) {
    lying_backend b(5, 15);
    auto r = b.generate({}, nullptr);
    const auto& s = r.stats;
    EXPECT_EQ(s.n_pieces, 5);
    ASSERT_GT(s.ttft_ms, 10.0);
    // 4 intervals of >= 15 ms: at most 4 / 0.060 s = 66.7 tok/s.
    EXPECT_GT(s.decode_tokens_per_s, 10.0);
    EXPECT_LE(s.decode_tokens_per_s, 4 * 1000.0 / 60.0 + 1e-9);
    EXPECT_NEAR(s.decode_tokens_per_s, 4 * 1000.0 / (s.last_piece_ms - s.ttft_ms), 1e-9);
    EXPECT_NEAR(s.prefill_tokens_per_s, 10 * 1000.0 / s.ttft_ms, 1e-9);
    // The server's claim is kept as an extra.
    ASSERT_TRUE(s.server_decode_tokens_per_s);
    EXPECT_DOUBLE_EQ(*s.server_decode_tokens_per_s, 5 * 1000.0 / 0.001);
}

TEST(BackendOwnClock, OneTokenHasNoDecodeSpeedAndSaysWhy) {
    lying_backend b(1, 5);
    auto r = b.generate({}, nullptr);
    EXPECT_EQ(r.stats.decode_tokens_per_s, 0.0);  // the runner turns 0 into "not measured"
    EXPECT_FALSE(r.stats.server_decode_tokens_per_s);
    ASSERT_FALSE(r.stats.notes.empty());
    EXPECT_EQ(r.stats.notes[0], "decode: 1 token(s) generated, no decode interval");
}

TEST(BackendOwnClock, NothingGeneratedLeavesTtftUnmeasured) {
    lying_backend b(0, 1, "incomplete");  // the stream ended without a token or a stop
    auto r = b.generate({}, nullptr);
    EXPECT_TRUE(std::isnan(r.stats.ttft_ms));
    EXPECT_EQ(r.stats.prefill_tokens_per_s, 0.0);
}

TEST(BackendOwnClock, AnEndOfGenerationTokenWithoutTextArrivesWithTheEndOfTheStream) {
    // The model's only token is EOS: no text piece, but the backend counted one token.
    class eos_only final : public backends::backend {
    public:
        std::string name() const override { return "eos"; }
        std::string description() const override { return "test"; }
        backends::availability check_available(const backends::backend_settings&) const override { return {true, "", ""}; }
        void load(const backends::backend_settings&) override {}
        void unload() override {}

    protected:
        void do_generate(const backends::generation_request&, const std::function<bool(std::string_view)>&,
                         backends::generation_result& result) override {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            result.stats.n_prompt_tokens = 12;
            result.stats.n_gen_tokens = 1;
        }
    } b;
    auto r = b.generate({}, nullptr);
    EXPECT_GE(r.stats.ttft_ms, 10.0);
    EXPECT_DOUBLE_EQ(r.stats.ttft_ms, r.stats.total_ms);
    EXPECT_NEAR(r.stats.prefill_tokens_per_s, 12 * 1000.0 / r.stats.ttft_ms, 1e-9);
    EXPECT_EQ(r.stats.decode_tokens_per_s, 0.0);
    ASSERT_EQ(r.stats.notes.size(), 2u);
    EXPECT_EQ(r.stats.notes[0].rfind("ttft: no text streamed", 0), 0u);
}

TEST(BenchSanityJson, NewFieldsRoundTripAndVerdictsAreRecomputed) {
    bench_report r = impossible_report();
    r.samples[0].server_decode_tokens_per_s = 99.5;
    r.samples[0].notes = {"cpu_pct: run too short (< 100 ms) for the 10 ms CPU-time ticks"};
    auto back = report_from_json(report_to_json(r));
    EXPECT_DOUBLE_EQ(back.system.mem_bandwidth_bytes_per_s, 10e9);
    ASSERT_EQ(back.samples.size(), r.samples.size());
    EXPECT_EQ(back.samples[0].server_decode_tokens_per_s, 99.5);
    EXPECT_FALSE(back.samples[1].server_decode_tokens_per_s);
    EXPECT_EQ(back.samples[0].notes, r.samples[0].notes);
    EXPECT_EQ(back.samples[2].n_gen_pieces, 1);
    EXPECT_EQ(back.samples[2].model_bytes, 100'000'000u);
    // The verdicts come from the raw values again, not from what the file said.
    auto g = checked_groups(back);
    EXPECT_TRUE(g[1].invalid.count(metric_decode));
}
