// Batch and concurrency sweeps: batched native generation gives every sequence exactly the
// greedy tokens that single-sequence generation gives (prompts of different lengths, a prefill
// split over several steps, sequences ending at different times), the sweep's aggregate
// tokens/s agrees with its token counts and wall time, and parallel requests really overlap.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <thread>

#include "bench/sweep_runner.h"
#include "core/error.h"
#include "engine/batch_generate.h"
#include "engine/engine.h"
#include "model/synth.h"
#include "test_util.h"

using namespace edgellm;

namespace {

class BatchGenerate : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        dir_ = new std::filesystem::path(test::temp_dir("bench-sweep"));
        synth::options o;
        o.shape = "tiny";
        o.type = "q8_0";
        synth::write_model((*dir_ / "tiny.gguf").string(), o);
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(*dir_);
        delete dir_;
    }
    static std::string model() { return (*dir_ / "tiny.gguf").string(); }
    static std::filesystem::path* dir_;

    // Prompts of odd, different lengths with distinct tokens.
    static std::vector<std::vector<int32_t>> prompts() {
        return {{1, 17, 42, 99, 7},
                {1, 200, 3, 3, 61, 88, 120, 5, 9, 31, 77},
                {1},
                {1, 250, 128, 64, 32, 16, 8}};
    }

    static std::vector<int32_t> single(engine::engine& e, const std::vector<int32_t>& prompt,
                                       const engine::generation_params& gp) {
        std::vector<int32_t> out;
        e.generate(prompt, gp, [&](int32_t t) {
            out.push_back(t);
            return true;
        });
        return out;
    }
};
std::filesystem::path* BatchGenerate::dir_ = nullptr;

TEST_F(BatchGenerate, GreedyTokensEqualSingleSequenceGeneration) {
    engine::engine_params sp;
    sp.model_path = model();
    sp.n_ctx = 64;
    sp.n_threads = 1;
    engine::engine solo(sp);
    engine::engine_params bp = sp;
    bp.n_seq = 4;
    bp.n_batch = 6;  // the 24 prompt tokens take four mixed-sequence prefill steps
    bp.n_threads = 2;
    engine::engine batched(bp);

    for (bool ignore_eos : {true, false}) {
        engine::generation_params gp;
        gp.n_predict = 13;
        gp.sampling.temperature = 0;
        gp.ignore_eos = ignore_eos;
        auto ps = prompts();
        auto st = engine::generate_batch(batched, ps, gp);
        ASSERT_EQ(st.sequences.size(), ps.size());
        int64_t n_gen = 0;
        for (size_t s = 0; s < ps.size(); ++s) {
            auto want = single(solo, ps[s], gp);
            EXPECT_EQ(st.sequences[s].tokens, want)
                << "sequence " << s << " ignore_eos " << ignore_eos;
            if (ignore_eos) {
                EXPECT_EQ(st.sequences[s].stop, edgellm::engine::stop_reason::length);
            }
            EXPECT_GE(st.sequences[s].latency_ms, st.sequences[s].first_token_ms);
            EXPECT_LE(st.sequences[s].latency_ms, st.wall_ms);
            n_gen += static_cast<int64_t>(st.sequences[s].tokens.size());
        }
        EXPECT_EQ(st.n_gen, n_gen);
        EXPECT_EQ(st.n_prompt, 5 + 11 + 1 + 7);
        // Different prompts lead to different continuations (so a mix-up of sequences would show).
        std::vector<std::vector<int32_t>> outs;
        for (const auto& q : st.sequences) outs.push_back(q.tokens);
        std::sort(outs.begin(), outs.end());
        EXPECT_GE(std::unique(outs.begin(), outs.end()) - outs.begin(), 3);
        if (ignore_eos) {
            EXPECT_EQ(st.n_gen, 4 * 13);
            EXPECT_EQ(st.n_decode_steps, 12);  // the 13th token of each needs no forward pass
        }
    }
}

TEST_F(BatchGenerate, SeveralRoundsReuseTheSequencesAndSubsetsWork) {
    engine::engine_params bp;
    bp.model_path = model();
    bp.n_ctx = 40;
    bp.n_seq = 3;
    bp.n_threads = 1;
    engine::engine e(bp);
    engine::generation_params gp;
    gp.n_predict = 7;
    gp.sampling.temperature = 0;
    gp.ignore_eos = true;
    auto ps = prompts();
    std::vector<std::vector<int32_t>> two = {ps[1], ps[0]};
    auto a = engine::generate_batch(e, two, gp);
    std::vector<std::vector<int32_t>> three = {ps[0], ps[3], ps[1]};
    auto b = engine::generate_batch(e, three, gp);
    auto c = engine::generate_batch(e, two, gp);
    EXPECT_EQ(a.sequences[0].tokens, c.sequences[0].tokens);
    EXPECT_EQ(a.sequences[0].tokens, b.sequences[2].tokens);  // same prompt, other slot
    EXPECT_EQ(a.sequences[1].tokens, b.sequences[0].tokens);
}

TEST_F(BatchGenerate, BadRequestsAreUsageErrors) {
    engine::engine_params bp;
    bp.model_path = model();
    bp.n_ctx = 16;
    bp.n_seq = 2;
    engine::engine e(bp);
    engine::generation_params gp;
    gp.n_predict = 4;
    std::vector<std::vector<int32_t>> none;
    EXPECT_THROW(engine::generate_batch(e, none, gp), usage_error);
    std::vector<std::vector<int32_t>> three = {{1}, {1}, {1}};
    EXPECT_THROW(engine::generate_batch(e, three, gp), usage_error);
    std::vector<std::vector<int32_t>> empty = {{1}, {}};
    EXPECT_THROW(engine::generate_batch(e, empty, gp), usage_error);
    std::vector<std::vector<int32_t>> too_long = {std::vector<int32_t>(16, 1)};
    EXPECT_THROW(engine::generate_batch(e, too_long, gp), usage_error);
    std::vector<std::vector<int32_t>> bad_token = {{1, 1 << 20}};
    EXPECT_THROW(engine::generate_batch(e, bad_token, gp), usage_error);
    gp.n_predict = 0;
    std::vector<std::vector<int32_t>> ok = {{1}};
    EXPECT_THROW(engine::generate_batch(e, ok, gp), usage_error);
}

TEST_F(BatchGenerate, NativeBatchSweepIsConsistent) {
    bench::sweep_plan p;
    p.models = {model()};
    p.kind = "batch";
    p.sizes = {1, 3, 5};
    p.n_predict = 6;
    p.n_runs = 2;
    p.settings.n_threads = 1;
    auto r = bench::run_sweep_benchmark(p);
    EXPECT_EQ(r.settings.mode, "sweep");
    EXPECT_EQ(r.settings.n_predict, 6);
    ASSERT_EQ(r.sweeps.size(), 3u);
    for (const auto& pt : r.sweeps) {
        EXPECT_EQ(pt.error, "");
        EXPECT_EQ(pt.kind, "batch");
        EXPECT_EQ(pt.backend, "native");
        ASSERT_EQ(pt.latency_ms.size(), static_cast<size_t>(pt.n_parallel * 2));
        // EOS is ignored in batch sweeps, so every sequence generates n_predict tokens.
        EXPECT_EQ(pt.n_gen_tokens, pt.n_parallel * 6 * 2);
        EXPECT_GT(pt.wall_ms, 0);
        for (double l : pt.latency_ms) EXPECT_TRUE(l > 0 && l <= pt.wall_ms) << l;
        // Two rounds: the wall time is at least the slowest request of a round.
        EXPECT_GE(pt.wall_ms, *std::max_element(pt.latency_ms.begin(), pt.latency_ms.end()));
        EXPECT_NEAR(bench::aggregate_tokens_per_s(pt),
                    static_cast<double>(pt.n_gen_tokens) * 1000.0 / pt.wall_ms, 1e-9);
    }
    EXPECT_EQ(r.sweeps[0].n_parallel, 1);
    EXPECT_EQ(r.sweeps[2].n_parallel, 5);
}

TEST_F(BatchGenerate, NativeConcurrencyIsNotSupportedAndSaysWhy) {
    bench::sweep_plan p;
    p.models = {model()};
    p.kind = "concurrency";
    p.sizes = {1, 2};
    p.n_predict = 2;
    auto r = bench::run_sweep_benchmark(p);
    ASSERT_EQ(r.sweeps.size(), 2u);
    for (const auto& pt : r.sweeps) {
        EXPECT_NE(pt.error.find("--batch-sizes"), std::string::npos) << pt.error;
        EXPECT_TRUE(pt.latency_ms.empty());
        EXPECT_EQ(bench::aggregate_tokens_per_s(pt), 0.0);
    }
}

// A server-like backend that takes 30 ms per request and counts how many run at once.
class slow_backend : public backends::backend {
  public:
    slow_backend(std::atomic<int>* active, std::atomic<int>* peak) : active_(active), peak_(peak) {}
    std::string name() const override { return "openai"; }
    std::string description() const override { return "fake server"; }
    backends::availability check_available(const backends::backend_settings&) const override {
        return {true, "", ""};
    }
    void load(const backends::backend_settings&) override {}
    void unload() override {}

  protected:
    void do_generate(const backends::generation_request& req,
                     const std::function<bool(std::string_view)>& emit,
                     backends::generation_result& result) override {
        int now = ++*active_;
        int seen = peak_->load();
        while (now > seen && !peak_->compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        for (int i = 0; i < req.n_predict; ++i) emit("t");
        result.stats.n_gen_tokens = req.n_predict;
        --*active_;
    }

  private:
    std::atomic<int>* active_;
    std::atomic<int>* peak_;
};

TEST(BenchSweepConcurrency, RequestsRunInParallelAndAddUp) {
    std::atomic<int> active{0}, peak{0};
    bench::sweep_plan p;
    p.backends = {"openai"};
    p.models = {"m"};
    p.kind = "concurrency";
    p.sizes = {1, 4};
    p.n_predict = 5;
    p.n_runs = 2;
    auto r = bench::run_sweep_benchmark(
        p, {}, [&](const std::string&) { return std::make_unique<slow_backend>(&active, &peak); });
    ASSERT_EQ(r.sweeps.size(), 2u);
    EXPECT_EQ(peak.load(), 4);
    for (const auto& pt : r.sweeps) {
        EXPECT_EQ(pt.error, "");
        EXPECT_EQ(pt.kind, "concurrency");
        ASSERT_EQ(pt.latency_ms.size(), static_cast<size_t>(pt.n_parallel * 2));
        EXPECT_EQ(pt.n_gen_tokens, pt.n_parallel * 5 * 2);
        for (double l : pt.latency_ms) EXPECT_GE(l, 29.0);
        EXPECT_GE(pt.wall_ms, 2 * 29.0);
    }
    // Four 30 ms requests at once take far less than four in a row.
    const auto& four = r.sweeps[1];
    double sum = std::accumulate(four.latency_ms.begin(), four.latency_ms.end(), 0.0);
    EXPECT_LT(four.wall_ms, sum * 0.75);
    EXPECT_GT(bench::aggregate_tokens_per_s(four), bench::aggregate_tokens_per_s(r.sweeps[0]));
}

TEST(BenchSweepConcurrency, BatchSweepsOfOtherBackendsAndBadPlans) {
    std::atomic<int> active{0}, peak{0};
    auto make = [&](const std::string&) { return std::make_unique<slow_backend>(&active, &peak); };
    bench::sweep_plan p;
    p.backends = {"openai"};
    p.models = {"m"};
    p.kind = "batch";
    p.sizes = {2};
    p.n_predict = 2;
    auto r = bench::run_sweep_benchmark(p, {}, make);
    ASSERT_EQ(r.sweeps.size(), 1u);
    EXPECT_NE(r.sweeps[0].error.find("use --concurrency"), std::string::npos) << r.sweeps[0].error;

    bench::sweep_plan bad = p;
    bad.sizes = {2, 0};
    EXPECT_THROW(bench::run_sweep_benchmark(bad, {}, make), usage_error);
    bad = p;
    bad.sizes.clear();
    EXPECT_THROW(bench::run_sweep_benchmark(bad, {}, make), usage_error);
    bad = p;
    bad.kind = "both";
    EXPECT_THROW(bench::run_sweep_benchmark(bad, {}, make), usage_error);
    bad = p;
    bad.n_predict = 0;
    EXPECT_THROW(bench::run_sweep_benchmark(bad, {}, make), usage_error);
}

}  // namespace
