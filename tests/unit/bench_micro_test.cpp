// Micro mode (llama-bench style tests): list flags parsed strictly, every combination expanded
// in the documented order (counts and order hand-computed), the native engine measured on a
// tiny synthetic model with the requested repetitions, and other backends measured only from
// what they report (a backend that reports nothing gets an error, never a number).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "model/gpu_layers.h"
#include "bench/micro_runner.h"
#include "core/error.h"
#include "model/synth.h"
#include "test_util.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

TEST(BenchMicroParse, IntLists) {
    EXPECT_EQ(parse_int_list("128,512", "-p", 1), (std::vector<int>{128, 512}));
    EXPECT_EQ(parse_int_list("7", "-t", 1), (std::vector<int>{7}));
    EXPECT_EQ(parse_int_list("0,99", "-ngl", 0), (std::vector<int>{0, 99}));
    EXPECT_EQ(parse_int_list("3,3,1", "-d", 0), (std::vector<int>{3, 3, 1}));
    for (const char* bad :
         {"", "1,,2", ",5", "5,", "abc", "1.5", "12x", " 5", "2147483648", "0x10"})
        EXPECT_THROW(parse_int_list(bad, "-p", 1), usage_error) << bad;
    EXPECT_THROW(parse_int_list("0", "-p", 1), usage_error);
    EXPECT_THROW(parse_int_list("-3", "-b", 1), usage_error);
    EXPECT_THROW(parse_int_list("-1", "-d", 0), usage_error);
    try {
        parse_int_list("64,abc", "-n", 1);
        FAIL() << "no error";
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("-n"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("abc"), std::string::npos) << e.what();
    }
}

TEST(BenchMicroParse, PromptGenPairs) {
    EXPECT_EQ(parse_pg_pair("512,128"), (std::pair<int, int>{512, 128}));
    for (const char* bad : {"512", "1,2,3", "0,5", "5,0", "a,b", ""})
        EXPECT_THROW(parse_pg_pair(bad), usage_error) << bad;
}

TEST(BenchMicroExpand, EveryCombinationInOrder) {
    micro_plan p;
    p.backends = {"native"};
    p.models = {"m1", "m2"};
    p.n_prompt = {3, 5};
    p.n_gen = {7};
    p.pg = {{3, 2}};
    p.n_threads = {1, 2};
    p.n_batch = {9};
    p.n_gpu_layers = {0};
    p.n_depth = {0, 11};
    auto cases = expand_micro_cases(p);
    // 1 backend x 2 models x 1 batch x 2 threads x 1 ngl x 2 depths x 4 tests = 32.
    ASSERT_EQ(cases.size(), 32u);
    auto name = [](const micro_case& c) {
        micro_result r;
        r.n_prompt = c.n_prompt;
        r.n_gen = c.n_gen;
        r.n_depth = c.n_depth;
        return micro_test_name(r);
    };
    const char* first8[] = {"pp3",       "pp5",       "tg7",       "pp3+tg2",
                            "pp3 @ d11", "pp5 @ d11", "tg7 @ d11", "pp3+tg2 @ d11"};
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(name(cases[i]), first8[i]) << i;
        EXPECT_EQ(cases[i].model, "m1");
        EXPECT_EQ(cases[i].n_threads, 1);
        EXPECT_EQ(cases[i].n_batch, 9);
    }
    EXPECT_EQ(cases[8].n_threads, 2);
    EXPECT_EQ(name(cases[8]), "pp3");
    EXPECT_EQ(cases[16].model, "m2");
    EXPECT_EQ(cases[16].n_threads, 1);
    EXPECT_EQ(name(cases[31]), "pp3+tg2 @ d11");
    EXPECT_EQ(cases[31].n_threads, 2);

    micro_plan two = p;
    two.backends = {"a", "b"};
    two.n_gpu_layers = {0, 99};
    two.n_batch = {16, 32, 64};
    EXPECT_EQ(expand_micro_cases(two).size(), 2u * 2 * 3 * 2 * 2 * 2 * 4);

    micro_plan none = p;
    none.n_prompt.clear();
    none.n_gen.clear();
    none.pg.clear();
    EXPECT_THROW(expand_micro_cases(none), usage_error);
    micro_plan nomodel = p;
    nomodel.models.clear();
    EXPECT_THROW(expand_micro_cases(nomodel), usage_error);
    micro_plan noreps = p;
    noreps.n_reps = 0;
    EXPECT_THROW(expand_micro_cases(noreps), usage_error);
}

class BenchMicroNative : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        dir_ = new std::filesystem::path(test::temp_dir("bench-micro"));
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
};
std::filesystem::path* BenchMicroNative::dir_ = nullptr;

TEST_F(BenchMicroNative, EveryTestHasItsRepetitionsOfPositiveRates) {
    micro_plan p;
    p.models = {model()};
    p.n_prompt = {13};
    p.n_gen = {5};
    p.pg = {{7, 3}};
    p.n_threads = {1, 2};
    p.n_batch = {4, 64};  // 4: the 13-token prompt takes four forward steps
    p.n_depth = {0, 9};
    p.n_reps = 3;
    auto r = run_micro_benchmark(p);
    EXPECT_EQ(r.settings.mode, "micro");
    EXPECT_EQ(r.settings.n_runs, 3);
    ASSERT_EQ(r.micro.size(), 2u * 2 * 2 * 3);
    auto cases = expand_micro_cases(p);
    for (size_t i = 0; i < r.micro.size(); ++i) {
        const auto& m = r.micro[i];
        EXPECT_EQ(m.error, "") << micro_test_name(m);
        ASSERT_EQ(m.tokens_per_s.size(), 3u) << micro_test_name(m);
        for (double v : m.tokens_per_s)
            EXPECT_TRUE(std::isfinite(v) && v > 0) << micro_test_name(m) << " " << v;
        EXPECT_EQ(m.backend, "native");
        EXPECT_EQ(m.n_prompt, cases[i].n_prompt);
        EXPECT_EQ(m.n_gen, cases[i].n_gen);
        EXPECT_EQ(m.n_depth, cases[i].n_depth);
        EXPECT_EQ(m.n_batch, cases[i].n_batch);
        EXPECT_EQ(m.n_threads, cases[i].n_threads);
    }
}

TEST_F(BenchMicroNative, DefaultThreadsAreRecordedAsUsed) {
    micro_plan p;
    p.models = {model()};
    p.n_gen = {3};
    p.n_reps = 1;
    auto r = run_micro_benchmark(p);
    ASSERT_EQ(r.micro.size(), 1u);
    EXPECT_EQ(r.micro[0].error, "");
    EXPECT_GT(r.micro[0].n_threads, 0);
    EXPECT_EQ(r.micro[0].n_gpu_layers, -1);  // not given: each backend's default, nothing claimed
}

TEST_F(BenchMicroNative, GpuLayersWithoutAGpuFailWithAReasonNotACpuRun) {
    if (model::gpu_offload_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is present";
    micro_plan p;
    p.models = {model()};
    p.n_gen = {2};
    p.n_gpu_layers = {0, 99};
    p.n_reps = 1;
    auto r = run_micro_benchmark(p);
    ASSERT_EQ(r.micro.size(), 2u);
    EXPECT_EQ(r.micro[0].error, "");
    EXPECT_EQ(r.micro[0].tokens_per_s.size(), 1u);
    EXPECT_NE(r.micro[1].error.find("use -ngl 0"), std::string::npos) << r.micro[1].error;
    EXPECT_TRUE(r.micro[1].tokens_per_s.empty());
}

TEST_F(BenchMicroNative, TestBeyondTheContextFailsAloneWithAReason) {
    micro_plan p;
    p.models = {model()};
    p.n_prompt = {16};
    p.n_depth = {0, 505};  // the tiny shape's context is 512: 505 + 16 does not fit
    p.n_reps = 2;
    auto r = run_micro_benchmark(p);
    ASSERT_EQ(r.micro.size(), 2u);
    EXPECT_EQ(r.micro[0].error, "");
    EXPECT_EQ(r.micro[0].tokens_per_s.size(), 2u);
    EXPECT_NE(r.micro[1].error.find("521 positions"), std::string::npos) << r.micro[1].error;
    EXPECT_TRUE(r.micro[1].tokens_per_s.empty());
}

TEST(BenchMicroNativeErrors, MissingModelIsAnErrorPerResult) {
    micro_plan p;
    p.models = {"/nonexistent/model.gguf"};
    p.n_prompt = {8};
    p.n_reps = 1;
    auto r = run_micro_benchmark(p);
    ASSERT_EQ(r.micro.size(), 1u);
    EXPECT_FALSE(r.micro[0].error.empty());
    EXPECT_TRUE(r.micro[0].tokens_per_s.empty());
}

// A server-like backend reporting fixed prompt/decode times (or nothing).
class timed_backend : public backends::backend {
  public:
    timed_backend(bool reports, int* n_calls, std::vector<std::string>* prompts = nullptr)
        : reports_(reports), n_calls_(n_calls), prompts_(prompts) {}
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
        ++*n_calls_;
        if (prompts_) prompts_->push_back(req.prompt);
        for (int i = 0; i < req.n_predict; ++i) emit("x");
        result.stats.n_gen_tokens = req.n_predict;
        if (!reports_) return;
        result.stats.n_prompt_tokens = 100;
        result.stats.backend_prompt_ms = 50.0;
        result.stats.backend_decode_ms = 8.0 * req.n_predict;
    }

  private:
    bool reports_;
    int* n_calls_;
    std::vector<std::string>* prompts_;
};

TEST(BenchMicroBackends, RatesComeFromTheBackendsOwnTimings) {
    int n_calls = 0;
    micro_plan p;
    p.backends = {"openai"};
    p.models = {"m"};
    p.n_prompt = {100};
    p.n_gen = {10};
    p.pg = {{100, 10}};
    p.n_reps = 4;
    std::vector<std::string> prompts;
    auto r = run_micro_benchmark(p, {}, [&](const std::string&) {
        return std::make_unique<timed_backend>(true, &n_calls, &prompts);
    });
    ASSERT_EQ(r.micro.size(), 3u);
    // Every request has its own prompt, so a backend's prompt-prefix cache cannot skip prefill.
    ASSERT_EQ(prompts.size(), 15u);
    std::sort(prompts.begin(), prompts.end());
    EXPECT_EQ(std::unique(prompts.begin(), prompts.end()), prompts.end());
    EXPECT_EQ(n_calls, 3 * (4 + 1));  // one warm-up request per test
    const double expect[] = {100 * 1000.0 / 50.0, 10 * 1000.0 / 80.0, 110 * 1000.0 / 130.0};
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(r.micro[i].error, "");
        ASSERT_EQ(r.micro[i].tokens_per_s.size(), 4u);
        for (double v : r.micro[i].tokens_per_s) EXPECT_NEAR(v, expect[i], 1e-9);
        EXPECT_EQ(r.micro[i].n_threads, 0);  // a server's own setting, not ours
    }
}

TEST(BenchMicroBackends, NoReportedTimingsNoDepthNoServerFlagsGiveErrors) {
    int n_calls = 0;
    auto make_silent = [&](const std::string&) {
        return std::make_unique<timed_backend>(false, &n_calls);
    };
    micro_plan p;
    p.backends = {"openai"};
    p.models = {"m"};
    p.n_prompt = {64};
    p.n_gen = {16};
    p.n_reps = 2;
    auto r = run_micro_benchmark(p, {}, make_silent);
    ASSERT_EQ(r.micro.size(), 2u);
    for (const auto& m : r.micro) {
        EXPECT_NE(m.error.find("micro mode for backend openai is not supported"), std::string::npos)
            << m.error;
        EXPECT_TRUE(m.tokens_per_s.empty());
    }

    auto make_timed = [&](const std::string&) {
        return std::make_unique<timed_backend>(true, &n_calls);
    };
    micro_plan depth = p;
    depth.n_depth = {32};
    for (const auto& m : run_micro_benchmark(depth, {}, make_timed).micro)
        EXPECT_NE(m.error.find("-d"), std::string::npos) << m.error;
    micro_plan threads = p;
    threads.n_threads = {4};
    threads.threads_given = true;
    for (const auto& m : run_micro_benchmark(threads, {}, make_timed).micro)
        EXPECT_NE(m.error.find("-t/-b/-ngl"), std::string::npos) << m.error;
}

}  // namespace
