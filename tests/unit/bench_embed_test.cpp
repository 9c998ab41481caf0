// `edgellm bench --embed` against fake backends: warm-up calls not recorded, the rates computed
// from the best run, a backend without embeddings / unavailable / failing reported per row and
// the others going on, and the generated inputs deterministic and of mixed lengths.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "bench/embed_bench.h"
#include "core/error.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

// Embeds with the given per-call times (ms), cycling; counts one token per word.
class fake_embedder : public backends::backend {
  public:
    fake_embedder(std::string name, std::vector<double> ms, int* calls, bool can_embed = true)
        : name_(std::move(name)), ms_(std::move(ms)), calls_(calls), can_embed_(can_embed) {}
    std::string name() const override { return name_; }
    std::string description() const override { return "fake"; }
    backends::availability check_available(const backends::backend_settings&) const override {
        return {name_ != "down", name_ == "down" ? "no server here" : "", ""};
    }
    void load(const backends::backend_settings& s) override {
        if (s.extra.count("embedding") == 0 || s.extra.at("embedding") != "1")
            throw error("not loaded for embeddings");
    }
    void unload() override {}
    backends::embed_stats embed(const std::vector<std::string>& texts) override {
        if (!can_embed_) return backend::embed(texts);  // the base: "does not support embeddings"
        if (name_ == "flaky" && *calls_ == 1) throw error("worker died");
        backends::embed_stats st;
        st.n_inputs = static_cast<int64_t>(texts.size());
        for (const auto& t : texts) {
            std::istringstream in(t);
            for (std::string w; in >> w;) ++st.n_tokens;
        }
        st.n_embd = 8;
        st.ms = ms_[static_cast<size_t>(*calls_) % ms_.size()];
        ++*calls_;
        return st;
    }

  protected:
    void do_generate(const backends::generation_request&,
                     const std::function<bool(std::string_view)>&,
                     backends::generation_result&) override {
        throw error("fake: no generation");
    }

  private:
    std::string name_;
    std::vector<double> ms_;
    int* calls_;
    bool can_embed_;
};

}  // namespace

TEST(BenchEmbed, InputsAreDeterministicAndOfMixedLengths) {
    const auto a = embed_inputs(40, 7), b = embed_inputs(40, 7), c = embed_inputs(40, 8);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    ASSERT_EQ(a.size(), 40u);
    std::set<size_t> lengths;
    for (const auto& t : a) {
        std::istringstream in(t);
        size_t n = 0;
        for (std::string w; in >> w;) ++n;
        lengths.insert(n);
        EXPECT_EQ(t.back(), '.');
    }
    EXPECT_GE(lengths.size(), 3u);
    for (size_t n : lengths) EXPECT_TRUE(n == 6 || n == 12 || n == 24 || n == 48 || n == 96) << n;
}

TEST(BenchEmbed, WarmupIsNotRecordedAndRatesComeFromTheBestRun) {
    embed_plan plan;
    plan.backends = {"fake"};
    plan.models = {"m.gguf"};
    plan.inputs = {"one two three", "four five"};
    plan.n_runs = 3;
    plan.n_warmup = 1;
    int calls = 0;
    // Call 0 is the warm-up (1000 ms, not recorded); the runs take 50, 40, 80 ms.
    auto samples = run_embed_benchmark(plan, {}, [&](const std::string& name) {
        return std::make_unique<fake_embedder>(name, std::vector<double>{1000, 50, 40, 80}, &calls);
    });
    ASSERT_EQ(samples.size(), 1u);
    const auto& s = samples[0];
    EXPECT_TRUE(s.error.empty()) << s.error;
    EXPECT_EQ(calls, 4);
    EXPECT_EQ(s.ms, (std::vector<double>{50, 40, 80}));
    EXPECT_EQ(s.n_inputs, 2);
    EXPECT_EQ(s.n_tokens, 5);
    const auto j = nlohmann::json::parse(embed_json(samples, plan));
    const auto& r = j["results"][0];
    EXPECT_DOUBLE_EQ(r["best_ms"].get<double>(), 40.0);
    EXPECT_DOUBLE_EQ(r["median_ms"].get<double>(), 50.0);
    EXPECT_DOUBLE_EQ(r["inputs_per_s"].get<double>(), 2 / 0.040);
    EXPECT_DOUBLE_EQ(r["tokens_per_s"].get<double>(), 5 / 0.040);
    const std::string table = render_embed(samples, plan, true);
    EXPECT_NE(table.find("| fake | m.gguf | 2 | 5 | 40.0 | 50.0 | 50.0 | 125 |"), std::string::npos)
        << table;
}

TEST(BenchEmbed, BackendsThatCannotEmbedAreReportedAndTheOthersRun) {
    embed_plan plan;
    plan.backends = {"noembed", "down", "flaky", "fake"};
    plan.models = {"m.gguf"};
    plan.inputs = {"a b"};
    plan.n_runs = 2;
    plan.n_warmup = 1;
    int calls_flaky = 0, calls_other = 0;
    auto samples = run_embed_benchmark(plan, {}, [&](const std::string& name) {
        return std::make_unique<fake_embedder>(name, std::vector<double>{10},
                                               name == "flaky" ? &calls_flaky : &calls_other,
                                               name != "noembed");
    });
    ASSERT_EQ(samples.size(), 4u);
    EXPECT_NE(samples[0].error.find("does not support embeddings"), std::string::npos)
        << samples[0].error;
    EXPECT_NE(samples[1].error.find("no server here"), std::string::npos) << samples[1].error;
    EXPECT_EQ(samples[2].error, "worker died");
    EXPECT_TRUE(samples[3].error.empty()) << samples[3].error;
    EXPECT_EQ(samples[3].ms.size(), 2u);
    const auto j = nlohmann::json::parse(embed_json(samples, plan));
    EXPECT_FALSE(j["results"][0].contains("tokens_per_s"));
    EXPECT_TRUE(j["results"][3].contains("tokens_per_s"));
}

TEST(BenchEmbed, RejectsBadPlans) {
    embed_plan plan;
    plan.backends = {"fake"};
    plan.models = {"m.gguf"};
    EXPECT_THROW(run_embed_benchmark(plan, {}), usage_error);  // no inputs
    plan.inputs = {"x"};
    plan.n_runs = 0;
    EXPECT_THROW(run_embed_benchmark(plan, {}), usage_error);
    plan.n_runs = 1;
    plan.models.clear();
    EXPECT_THROW(run_embed_benchmark(plan, {}), usage_error);
}
