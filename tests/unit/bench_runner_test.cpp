// The prompt-set benchmark runner against fake backends: run counts, warm-up not recorded,
// client-side timings carried into samples, unavailable/failing backends reported and skipped.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "bench/runner.h"
#include "bench/stats.h"
#include "core/error.h"
#include "test_util.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

class fake_backend : public backends::backend {
public:
    fake_backend(std::string name, bool available, int fail_on_call, int* n_calls)
        : name_(std::move(name)), available_(available), fail_on_call_(fail_on_call), n_calls_(n_calls) {}
    std::string name() const override { return name_; }
    std::string description() const override { return "fake"; }
    backends::availability check_available(const backends::backend_settings&) const override {
        return {available_, available_ ? "" : "no server here", "start one with --fake"};
    }
    void load(const backends::backend_settings& s) override { model_ = s.model; }
    void unload() override {}

protected:
    void do_generate(const backends::generation_request& req, const std::function<bool(std::string_view)>& emit,
                     backends::generation_result& result) override {
        int call = ++*n_calls_;
        if (call == fail_on_call_) throw error("fake failure");
        std::this_thread::sleep_for(std::chrono::milliseconds(4));
        for (int i = 0; i < 3; ++i) {
            emit("tok ");
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        result.stats.n_prompt_tokens = static_cast<int64_t>(req.prompt.size());
        result.stats.n_gen_tokens = 3;
        result.stats.backend_memory_bytes = 4096;
    }

private:
    std::string name_, model_;
    bool available_;
    int fail_on_call_;
    int* n_calls_;
};

}  // namespace

TEST(BenchRunner, RunsEveryCombinationAndSkipsWarmup) {
    run_plan plan;
    plan.backends = {"fake_a", "fake_b"};
    plan.models = {"m1", "m2"};
    plan.prompts = {{"one", "abc"}, {"two", "abcdefg"}};
    plan.n_runs = 3;
    plan.n_warmup = 1;
    int calls_a = 0, calls_b = 0;
    std::vector<std::string> events;
    auto report = run_prompt_benchmark(
        plan, [&](const progress_event& e) { events.push_back(e.what); },
        [&](const std::string& name) {
            return std::make_unique<fake_backend>(name, true, -1, name == "fake_a" ? &calls_a : &calls_b);
        });
    ASSERT_EQ(report.samples.size(), 2u * 2u * 2u * 3u);
    EXPECT_EQ(calls_a, 2 * 2 * (3 + 1));  // warm-up runs happen but are not recorded
    for (const auto& s : report.samples) {
        EXPECT_TRUE(s.error.empty()) << s.error;
        EXPECT_EQ(s.n_gen_tokens, 3);
        EXPECT_EQ(s.n_prompt_tokens, s.prompt_id == "one" ? 3 : 7);
        EXPECT_GT(s.ttft_ms, 0.0);
        EXPECT_GE(s.latency_ms, s.ttft_ms);
        EXPECT_EQ(s.output_sample, "tok tok tok ");
        EXPECT_EQ(s.peak_rss_bytes, 4096u);  // out-of-process backend: its own report
        EXPECT_TRUE(s.resources.empty());
    }
    EXPECT_EQ(report.samples[5].run_index, 2);
    EXPECT_EQ(report.settings.n_runs, 3);
    EXPECT_EQ(report.schema, schema_version);
    EXPECT_EQ(std::count(events.begin(), events.end(), "run"), 24);
    EXPECT_EQ(summarize_groups(report.samples).size(), 4u);
}

TEST(BenchRunner, UnavailableAndFailingBackendsAreReportedNotFatal) {
    run_plan plan;
    plan.backends = {"down", "flaky"};
    plan.models = {"m"};
    plan.prompts = {{"p", "x"}};
    plan.n_runs = 2;
    plan.n_warmup = 0;
    int calls = 0;
    std::vector<progress_event> problems;
    auto report = run_prompt_benchmark(
        plan,
        [&](const progress_event& e) {
            if (e.what == "unavailable" || e.what == "failed") problems.push_back(e);
        },
        [&](const std::string& name) { return std::make_unique<fake_backend>(name, name != "down", 2, &calls); });
    ASSERT_EQ(report.samples.size(), 3u);  // one "unavailable" row + two runs of flaky
    EXPECT_EQ(report.samples[0].backend, "down");
    EXPECT_NE(report.samples[0].error.find("no server here"), std::string::npos);
    EXPECT_NE(report.samples[0].error.find("start one with --fake"), std::string::npos);
    EXPECT_TRUE(report.samples[1].error.empty());
    EXPECT_EQ(report.samples[2].error, "fake failure");
    ASSERT_EQ(problems.size(), 2u);
    EXPECT_EQ(problems[0].what, "unavailable");
    auto groups = summarize_groups(report.samples);
    EXPECT_EQ(groups[1].n_runs, 1u);
    EXPECT_EQ(groups[1].n_failed, 1u);
}

TEST(BenchRunner, RejectsBadPlans) {
    run_plan plan;
    EXPECT_THROW(run_prompt_benchmark(plan), usage_error);  // no model
    plan.models = {"m"};
    plan.n_runs = 0;
    EXPECT_THROW(run_prompt_benchmark(plan), usage_error);
}

TEST(BenchRunner, PromptsFileAndBuiltinSet) {
    ASSERT_EQ(builtin_prompts().size(), 3u);
    EXPECT_LT(builtin_prompts()[0].text.size(), builtin_prompts()[2].text.size());
    auto dir = test::temp_dir("bench-prompts");
    { std::ofstream(dir / "p.txt") << "first prompt\n\n  \nnamed\tsecond prompt\r\n"; }
    auto p = load_prompts((dir / "p.txt").string());
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].id, "p1");
    EXPECT_EQ(p[0].text, "first prompt");
    EXPECT_EQ(p[1].id, "named");
    EXPECT_EQ(p[1].text, "second prompt");
    { std::ofstream(dir / "empty.txt") << "\n\n"; }
    EXPECT_THROW(load_prompts((dir / "empty.txt").string()), usage_error);
    EXPECT_THROW(load_prompts((dir / "absent.txt").string()), usage_error);
    std::filesystem::remove_all(dir);
}

TEST(BenchRunner, SystemAndBuildInfo) {
    auto s = detect_system();
    EXPECT_GE(s.n_cpu_cores, 1);
    EXPECT_FALSE(s.device.empty());
    auto b = this_build();
    EXPECT_FALSE(b.version.empty());
    EXPECT_FALSE(b.compiler.empty());
}
