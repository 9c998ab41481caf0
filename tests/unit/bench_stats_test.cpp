// Benchmark statistics (against hand-computed values), per-group summaries, fastest/slowest
// ratios and the report comparison with its regression flags.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "bench/compare.h"
#include "bench/stats.h"
#include "core/error.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

run_sample sample(const std::string& backend, const std::string& model, double latency_ms, double decode = 10.0) {
    run_sample s;
    s.backend = backend;
    s.model = model;
    s.prompt_id = "p";
    s.latency_ms = latency_ms;
    s.ttft_ms = latency_ms / 10.0;
    s.decode_tokens_per_s = decode;
    s.prefill_tokens_per_s = decode * 10.0;
    s.n_gen_tokens = 8;
    s.peak_rss_bytes = 1000;
    return s;
}

}  // namespace

TEST(BenchStats, SummaryOfEightValuesMatchesHandComputation) {
    // sorted: 2 4 4 4 5 5 7 9; sum 40 -> mean 5; squared deviations sum to 32 -> sample var 32/7.
    std::vector<double> v = {9, 4, 2, 4, 5, 7, 4, 5};
    summary s = summarize(v);
    EXPECT_EQ(s.n, 8u);
    EXPECT_DOUBLE_EQ(s.mean, 5.0);
    EXPECT_NEAR(s.std, std::sqrt(32.0 / 7.0), 1e-12);
    EXPECT_DOUBLE_EQ(s.min, 2.0);
    EXPECT_DOUBLE_EQ(s.max, 9.0);
    // p50: rank 0.5*7 = 3.5 -> halfway between sorted[3]=4 and sorted[4]=5.
    EXPECT_DOUBLE_EQ(s.p50, 4.5);
    // p95: rank 0.95*7 = 6.65 -> sorted[6]=7 + 0.65*(9-7) = 8.3.
    EXPECT_NEAR(s.p95, 8.3, 1e-12);
}

TEST(BenchStats, OddCountAndSingleValue) {
    std::vector<double> three = {3, 1, 2};
    summary s = summarize(three);
    EXPECT_DOUBLE_EQ(s.mean, 2.0);
    EXPECT_DOUBLE_EQ(s.std, 1.0);
    EXPECT_DOUBLE_EQ(s.p50, 2.0);
    EXPECT_NEAR(s.p95, 2.9, 1e-12);  // rank 1.9 -> 2 + 0.9*(3-2)

    std::vector<double> one = {7.5};
    summary o = summarize(one);
    EXPECT_EQ(o.n, 1u);
    EXPECT_DOUBLE_EQ(o.mean, 7.5);
    EXPECT_DOUBLE_EQ(o.std, 0.0);
    EXPECT_DOUBLE_EQ(o.p95, 7.5);
}

TEST(BenchStats, EmptyInputIsNaNNotACrash) {
    std::vector<double> none;
    summary s = summarize(none);
    EXPECT_EQ(s.n, 0u);
    EXPECT_TRUE(std::isnan(s.mean));
    EXPECT_TRUE(std::isnan(s.p95));
    EXPECT_TRUE(std::isnan(percentile(none, 50)));
}

TEST(BenchStats, PercentileEndsAndRangeCheck) {
    std::vector<double> v = {10, 20, 30, 40, 50};
    EXPECT_DOUBLE_EQ(percentile(v, 0), 10.0);
    EXPECT_DOUBLE_EQ(percentile(v, 100), 50.0);
    EXPECT_DOUBLE_EQ(percentile(v, 90), 46.0);  // rank 3.6 -> 40 + 0.6*10
    EXPECT_THROW(percentile(v, -1), usage_error);
    EXPECT_THROW(percentile(v, 100.5), usage_error);
}

TEST(BenchStats, StdIsStableForLargeOffsets) {
    // Naive sum-of-squares loses everything here; the two-pass formula keeps std = 1.
    std::vector<double> v = {1e9 + 1, 1e9 + 2, 1e9 + 3};
    EXPECT_NEAR(summarize(v).std, 1.0, 1e-6);
}

TEST(BenchStats, GroupsKeepOrderAndCountFailures) {
    std::vector<run_sample> samples = {sample("b2", "m", 30), sample("b1", "m", 10), sample("b2", "m", 50),
                                       sample("b1", "m", 20)};
    samples.push_back(sample("b1", "m", 1e6));
    samples.back().error = "timeout";
    auto groups = summarize_groups(samples);
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[0].backend, "b2");
    EXPECT_EQ(groups[1].backend, "b1");
    EXPECT_EQ(groups[1].n_runs, 2u);
    EXPECT_EQ(groups[1].n_failed, 1u);
    EXPECT_DOUBLE_EQ(groups[1].latency_ms.mean, 15.0);  // the failed run's 1e6 is not used
    EXPECT_DOUBLE_EQ(groups[0].latency_ms.mean, 40.0);
    EXPECT_EQ(groups[0].label(), "b2 / m");
    EXPECT_EQ(groups[0].energy_j_per_token.n, 0u);
}

TEST(BenchStats, FastestSlowestAndRatio) {
    std::vector<run_sample> samples = {sample("fast", "m", 10, 40), sample("mid", "m", 15, 30),
                                       sample("slow", "m", 25, 20)};
    auto groups = summarize_groups(samples);
    auto ex = standard_extremes(groups);
    ASSERT_EQ(ex[0].metric, "latency_ms");
    EXPECT_EQ(ex[0].best, "fast / m");
    EXPECT_EQ(ex[0].worst, "slow / m");
    EXPECT_DOUBLE_EQ(ex[0].ratio, 2.5);
    ASSERT_EQ(ex[2].metric, "decode_tokens_per_s");
    EXPECT_EQ(ex[2].best, "fast / m");
    EXPECT_DOUBLE_EQ(ex[2].ratio, 2.0);  // higher is better: 40 / 20

    auto single = standard_extremes(summarize_groups({sample("only", "m", 10)}));
    EXPECT_TRUE(std::isnan(single[0].ratio));
    EXPECT_EQ(single[0].best, "only / m");
}

TEST(BenchStats, MicroTestNamesFollowLlamaBench) {
    micro_result m;
    m.n_prompt = 512;
    EXPECT_EQ(micro_test_name(m), "pp512");
    m.n_gen = 128;
    EXPECT_EQ(micro_test_name(m), "pp512+tg128");
    m.n_prompt = 0;
    EXPECT_EQ(micro_test_name(m), "tg128");
    m.n_depth = 1024;
    EXPECT_EQ(micro_test_name(m), "tg128 @ d1024");
}

TEST(BenchStats, SweepAggregateThroughput) {
    sweep_point p;
    p.wall_ms = 2500;
    p.n_gen_tokens = 300;
    EXPECT_DOUBLE_EQ(aggregate_tokens_per_s(p), 120.0);
    p.wall_ms = 0;
    EXPECT_DOUBLE_EQ(aggregate_tokens_per_s(p), 0.0);
}

TEST(BenchCompare, FlagsRegressionsInTheRightDirection) {
    bench_report a, b;
    a.samples = {sample("x", "m", 100, 50), sample("y", "m", 100, 50)};
    // x: latency +20% (worse) and decode -20% (worse); y: latency -10% (better), decode +3% (noise).
    b.samples = {sample("x", "m", 120, 40), sample("y", "m", 90, 51.5), sample("z", "m", 1)};
    auto c = compare(a, b, 5.0);
    auto row = [&](const std::string& item, const std::string& metric) -> const compare_row& {
        for (const auto& r : c.rows)
            if (r.item == item && r.metric == metric) return r;
        throw std::runtime_error("row missing: " + item + " " + metric);
    };
    EXPECT_TRUE(row("x / m", "latency_ms").regression);
    EXPECT_NEAR(row("x / m", "latency_ms").ratio, 1.2, 1e-12);
    EXPECT_NEAR(row("x / m", "latency_ms").change_pct, 20.0, 1e-9);
    EXPECT_TRUE(row("x / m", "decode_tokens_per_s").regression);
    EXPECT_FALSE(row("y / m", "latency_ms").regression);
    EXPECT_TRUE(row("y / m", "latency_ms").improvement);
    EXPECT_FALSE(row("y / m", "decode_tokens_per_s").regression);
    EXPECT_FALSE(row("y / m", "decode_tokens_per_s").improvement);
    EXPECT_FALSE(row("x / m", "peak_rss_bytes").regression);  // unchanged
    EXPECT_EQ(c.n_regressions(), 4u);  // x: latency, ttft, prefill, decode
    ASSERT_EQ(c.only_in_b.size(), 1u);
    EXPECT_EQ(c.only_in_b[0], "z / m");

    std::string text = render_compare(c);
    EXPECT_NE(text.find("REGRESSION"), std::string::npos);
    EXPECT_NE(text.find("4 regression(s) beyond 5.0%"), std::string::npos);
    EXPECT_NE(text.find("only in B (candidate): z / m"), std::string::npos);

    // A looser threshold forgives the 20% change.
    EXPECT_EQ(compare(a, b, 25.0).n_regressions(), 0u);
    EXPECT_THROW(compare(a, b, -1.0), usage_error);
}

TEST(BenchCompare, MatchesMicroTestsAndSweepsByParameters) {
    bench_report a, b;
    micro_result m;
    m.backend = "native";
    m.model = "m";
    m.n_prompt = 64;
    m.n_threads = 4;
    m.tokens_per_s = {100, 102, 98};
    a.micro.push_back(m);
    m.tokens_per_s = {80, 81, 79};
    b.micro.push_back(m);
    m.n_threads = 8;  // a different configuration: not compared with the t4 one
    b.micro.push_back(m);
    sweep_point p;
    p.backend = "native";
    p.model = "m";
    p.n_parallel = 4;
    p.latency_ms = {100, 100};
    p.wall_ms = 1000;
    p.n_gen_tokens = 100;
    a.sweeps.push_back(p);
    p.wall_ms = 500;  // twice the throughput
    b.sweeps.push_back(p);
    auto c = compare(a, b, 5.0);
    ASSERT_EQ(c.rows.size(), 3u);
    EXPECT_EQ(c.rows[0].metric, "tokens_per_s");
    EXPECT_TRUE(c.rows[0].regression);
    EXPECT_NEAR(c.rows[0].ratio, 0.8, 1e-12);
    EXPECT_EQ(c.rows[2].metric, "aggregate_tokens_per_s");
    EXPECT_TRUE(c.rows[2].improvement);
    EXPECT_NEAR(c.rows[2].ratio, 2.0, 1e-12);
    EXPECT_EQ(c.only_in_b.size(), 1u);
}
