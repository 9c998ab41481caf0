// The prompt-set benchmark runner against fake backends: run counts, warm-up not recorded,
// client-side timings carried into samples, unavailable/failing backends reported and skipped,
// resource figures from the monitor (fake NVML series, Jetson sysfs fixture, a server's PID)
// with energy per token hand-computed, and unknown figures left unknown.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <fstream>
#include <thread>
#include <unistd.h>

#include "bench/runner.h"
#include "bench/stats.h"
#include "core/error.h"
#include "device/nvml.h"
#include "test_util.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

class fake_backend : public backends::backend {
public:
    fake_backend(std::string name, bool available, int fail_on_call, int* n_calls, std::optional<int> pid = {},
                 double spin_ms = 0)
        : name_(std::move(name)), available_(available), fail_on_call_(fail_on_call), n_calls_(n_calls), pid_(pid),
          spin_ms_(spin_ms) {}
    std::string name() const override { return name_; }
    std::optional<int> process_id() const override { return pid_; }
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
        // Busy for spin_ms of wall time (a server working), so CPU time has something to count.
        const auto spin_until = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(spin_ms_);
        volatile uint64_t sink = 0;
        while (std::chrono::steady_clock::now() < spin_until) sink = sink + 1;
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
    std::optional<int> pid_;
    double spin_ms_;
};

// A GPU whose readings follow a script, one entry per read (the last repeats).
class scripted_nvml final : public device::nvml_interface {
public:
    explicit scripted_nvml(std::vector<device::gpu_reading> script) : script_(std::move(script)) {}
    bool available() const override { return true; }
    std::string driver_version() const override { return "550.0"; }
    int cuda_driver_version() const override { return 12040; }
    int device_count() const override { return 1; }
    std::optional<device::gpu_info> device(int) const override {
        device::gpu_info g;
        g.name = "Fake GPU 7";
        g.memory_total_bytes = 8ull << 30;
        return g;
    }
    device::gpu_reading read(int) const override {
        size_t i = std::min(n_reads_++, script_.size() - 1);
        return script_[i];
    }

private:
    std::vector<device::gpu_reading> script_;
    mutable size_t n_reads_ = 0;
};

std::filesystem::path fixture(const std::string& name) {
    return std::filesystem::path(EDGELLM_SOURCE_DIR) / "tests/fixtures/devices" / name;
}

// One prompt, one measured run, no warm-up; the sampler's timed samples never come (huge
// interval), so the run has exactly its start and stop samples, 250 ms apart on a clock that
// moves 250 ms per read.
run_plan one_run_plan(const std::string& backend) {
    run_plan plan;
    plan.backends = {backend};
    plan.models = {"m"};
    plan.prompts = {{"p", "abcde"}};
    plan.n_runs = 1;
    plan.n_warmup = 0;
    plan.sample_interval_ms = 1e7;
    auto t = std::make_shared<double>(0.0);
    plan.monitor_clock_ms = [t] { return *t += 250.0; };
    return plan;
}

bench_report run_one(const run_plan& plan, std::optional<int> pid = {}, double spin_ms = 0) {
    int calls = 0;
    return run_prompt_benchmark(plan, {}, [&](const std::string& name) {
        return std::make_unique<fake_backend>(name, true, -1, &calls, pid, spin_ms);
    });
}

bool has_note(const run_sample& s, const std::string& prefix) {
    for (const auto& n : s.notes)
        if (n.rfind(prefix, 0) == 0) return true;
    return false;
}

}  // namespace

TEST(BenchRunner, RunsEveryCombinationAndSkipsWarmup) {
    run_plan plan;
    plan.monitor_root = fixture("arm-cpu-only");  // no GPU, no power readings: no time series
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

TEST(BenchRunner, PairedPlansRunTheIthBackendWithTheIthModel) {
    using pairs = std::vector<std::pair<std::string, std::string>>;
    EXPECT_EQ(backend_model_pairs({"a", "b"}, {"m1", "m2"}, false),
              (pairs{{"a", "m1"}, {"a", "m2"}, {"b", "m1"}, {"b", "m2"}}));
    EXPECT_EQ(backend_model_pairs({"a", "b"}, {"m1", "m2"}, true), (pairs{{"a", "m1"}, {"b", "m2"}}));
    EXPECT_EQ(backend_model_pairs({"a", "b"}, {"m1"}, true), (pairs{{"a", "m1"}, {"b", "m1"}}));
    EXPECT_EQ(backend_model_pairs({"a"}, {"m1", "m2"}, true), (pairs{{"a", "m1"}, {"a", "m2"}}));
    try {
        backend_model_pairs({"a", "b", "c"}, {"m1", "m2"}, true);
        FAIL() << "3 backends paired with 2 models";
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("got 3 backend(s) and 2 model(s)"), std::string::npos) << e.what();
    }

    run_plan plan;
    plan.monitor_root = fixture("arm-cpu-only");
    plan.backends = {"fake_a", "fake_b"};
    plan.models = {"m1", "m2"};
    plan.prompts = {{"one", "abc"}};
    plan.n_runs = 2;
    plan.n_warmup = 0;
    plan.pair_models = true;
    std::vector<size_t> totals;
    int calls = 0;
    auto report = run_prompt_benchmark(
        plan, [&](const progress_event& e) { totals.push_back(e.n_total); },
        [&](const std::string& name) { return std::make_unique<fake_backend>(name, true, -1, &calls); });
    ASSERT_EQ(report.samples.size(), 4u);
    for (const auto& s : report.samples) EXPECT_EQ(s.model, s.backend == "fake_a" ? "m1" : "m2");
    ASSERT_FALSE(totals.empty());
    EXPECT_EQ(totals.back(), 4u);  // progress counts only the paired runs
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

TEST(BenchRunnerResources, FakeNvmlSeriesGivesGpuFiguresAndEnergyPerToken) {
    run_plan plan = one_run_plan("native");
    plan.monitor_root = fixture("x86-rtx");  // no Jetson rails, no RAPL: power is the GPU's
    plan.nvml = std::make_shared<scripted_nvml>(std::vector<device::gpu_reading>{
        {1ull << 30, 20.0, 50.0, 40.0},   // start sample: 1 GiB, 20 %, 40 W
        {3ull << 30, 60.0, 55.0, 50.0}}); // stop sample:  3 GiB, 60 %, 50 W
    auto r = run_one(plan);
    ASSERT_EQ(r.samples.size(), 1u);
    const auto& s = r.samples[0];
    ASSERT_TRUE(s.error.empty()) << s.error;
    EXPECT_EQ(r.system.gpu, "Fake GPU 7");
    EXPECT_EQ(r.system.gpu_mem_total_bytes, 8ull << 30);
    ASSERT_EQ(s.resources.size(), 2u);
    EXPECT_DOUBLE_EQ(s.resources[1].t_ms - s.resources[0].t_ms, 250.0);
    EXPECT_EQ(s.resources[0].gpu_mem_bytes, 1ull << 30);
    EXPECT_DOUBLE_EQ(s.resources[1].gpu_util_pct, 60.0);
    ASSERT_TRUE(s.resources[1].power_w);
    EXPECT_DOUBLE_EQ(*s.resources[1].power_w, 50.0);
    EXPECT_EQ(s.gpu_mem_bytes, 3ull << 30);  // the peak
    EXPECT_DOUBLE_EQ(s.gpu_util_pct, 40.0);  // the mean
    EXPECT_EQ(s.power_source, "nvml gpu");
    ASSERT_TRUE(s.mean_power_w);
    EXPECT_DOUBLE_EQ(*s.mean_power_w, 45.0);
    // Trapezoid: (40 + 50) / 2 W * 0.25 s = 11.25 J, over 3 generated tokens.
    ASSERT_TRUE(s.energy_j);
    EXPECT_DOUBLE_EQ(*s.energy_j, 11.25);
    ASSERT_TRUE(s.energy_j_per_token);
    EXPECT_DOUBLE_EQ(*s.energy_j_per_token, 3.75);
    EXPECT_EQ(s.n_gen_tokens, 3);
    // The summary carries it to the reports.
    auto groups = summarize_groups(r.samples);
    ASSERT_EQ(groups.size(), 1u);
    EXPECT_DOUBLE_EQ(groups[0].energy_j_per_token.mean, 3.75);
}

TEST(BenchRunnerResources, JetsonSysfsFixtureGivesBoardPowerAndProcessFigures) {
    run_plan plan = one_run_plan("native");
    plan.monitor_root = fixture("orin-nano-8gb");
    auto r = run_one(plan);
    const auto& s = r.samples.at(0);
    ASSERT_TRUE(s.error.empty()) << s.error;
    EXPECT_EQ(s.monitored_process, "self");
    EXPECT_EQ(s.peak_rss_bytes, 204800ull * 1024);  // the fixture's VmRSS
    EXPECT_DOUBLE_EQ(s.cpu_pct, 0.0);  // its CPU counters do not move
    EXPECT_DOUBLE_EQ(s.gpu_util_pct, 47.2);
    EXPECT_EQ(s.gpu_mem_bytes, 0u);  // the sysfs tree has no GPU memory figure
    EXPECT_EQ(s.power_source, "jetson board");
    // VDD_IN 5080 mV x 1420 mA, constant, for 0.25 s, over 3 tokens.
    ASSERT_TRUE(s.energy_j_per_token);
    EXPECT_NEAR(*s.energy_j_per_token, 5.080 * 1.420 * 0.25 / 3, 1e-12);
}

TEST(BenchRunnerResources, ServerCpuIsCpuTimeOverWallTimeOfTheRun) {
    // The "server" is this test process, busy for 300 ms: CPU time from /proc/<pid>/stat at the
    // start and end of the run, over its wall time (the sampler's 1e7 ms interval never ticks).
    run_plan plan = one_run_plan("fake_server");
    plan.monitor_clock_ms = nullptr;
    plan.cpu_package_power = false;
    plan.nvml = std::make_shared<device::fake_nvml>("550.0", 12040, std::vector<device::fake_gpu>{});
    auto r = run_one(plan, static_cast<int>(getpid()), 300);
    const auto& s = r.samples.at(0);
    ASSERT_TRUE(s.error.empty()) << s.error;
    ASSERT_FALSE(std::isnan(s.cpu_pct)) << (s.notes.empty() ? "" : s.notes.back());
    // One thread spinning: up to one core (a loaded machine gives it less; ticks add 10 ms slack).
    EXPECT_GT(s.cpu_pct, 10.0);
    EXPECT_LT(s.cpu_pct, 160.0);
}

TEST(BenchRunnerResources, InProcessCpuComesFromRusageEvenForAShortRun) {
    // native-like (pid 0 on the real /proc): getrusage has microsecond resolution, so a run of
    // 300 ms busy gets a figure although the sampler never ticked in between.
    run_plan plan = one_run_plan("native");
    plan.monitor_clock_ms = nullptr;
    plan.monitor_root = "/";
    plan.cpu_package_power = false;
    plan.nvml = std::make_shared<device::fake_nvml>("550.0", 12040, std::vector<device::fake_gpu>{});
    auto r = run_one(plan, std::nullopt, 300);
    const auto& s = r.samples.at(0);
    ASSERT_TRUE(s.error.empty()) << s.error;
    EXPECT_EQ(s.monitored_process, "self");
    ASSERT_FALSE(std::isnan(s.cpu_pct));
    EXPECT_GT(s.cpu_pct, 10.0);
    EXPECT_LT(s.cpu_pct, 160.0);
}

TEST(BenchRunner, MemoryBandwidthIsMeasuredAndPlausible) {
    // One thread streaming 64 MiB: somewhere between an old phone and an HBM GPU.
    const double bw = measure_memory_bandwidth_bytes_per_s();
    EXPECT_GT(bw, 200e6);
    EXPECT_LT(bw, 5e12);
}

TEST(BenchRunnerResources, NoGpuNoPowerLeavesThemUnknown) {
    run_plan plan = one_run_plan("native");
    plan.monitor_root = fixture("arm-cpu-only");
    auto r = run_one(plan);
    const auto& s = r.samples.at(0);
    ASSERT_TRUE(s.error.empty()) << s.error;
    EXPECT_TRUE(std::isnan(s.gpu_util_pct));
    EXPECT_EQ(s.gpu_mem_bytes, 0u);
    EXPECT_FALSE(s.energy_j_per_token);
    EXPECT_FALSE(s.energy_j);
    EXPECT_FALSE(s.mean_power_w);
    EXPECT_EQ(s.power_source, "");
    EXPECT_TRUE(r.system.gpu.empty());
}

TEST(BenchRunnerResources, ServerProcessIsSampledByPidElseNotMeasured) {
    // The "server" is this test process, so there is something real to read.
    run_plan plan = one_run_plan("fake_server");
    plan.sample_interval_ms = 5;
    plan.monitor_clock_ms = nullptr;
    plan.cpu_package_power = false;  // RAPL may be readable here: this test is about the process
    plan.nvml = std::make_shared<device::fake_nvml>("550.0", 12040, std::vector<device::fake_gpu>{});
    auto with_pid = run_one(plan, static_cast<int>(getpid()));
    const auto& s = with_pid.samples.at(0);
    ASSERT_TRUE(s.error.empty()) << s.error;
    EXPECT_EQ(s.monitored_process.rfind("pid " + std::to_string(getpid()), 0), 0u) << s.monitored_process;
    EXPECT_GT(s.peak_rss_bytes, 1u << 20);  // sampled, not the backend's 4096
    // A 10 ms run is shorter than 10 ticks of /proc CPU time: no figure (not a 0), and a note.
    EXPECT_TRUE(std::isnan(s.cpu_pct));
    EXPECT_TRUE(has_note(s, "cpu_pct: run too short (< 100 ms)")) << (s.notes.empty() ? "" : s.notes.back());
    EXPECT_GE(s.resources.size(), 2u);

    auto without = run_one(plan);
    const auto& u = without.samples.at(0);
    EXPECT_EQ(u.monitored_process, "");
    EXPECT_TRUE(std::isnan(u.cpu_pct));
    EXPECT_TRUE(has_note(u, "cpu_pct: no process to follow"));
    EXPECT_EQ(u.peak_rss_bytes, 4096u);  // the backend's own report stands in
    EXPECT_TRUE(u.resources.empty());
}
