// Cost of the resource monitor: one sample (Google Benchmark timing), and the sampler thread's
// own CPU time as a share of one core at the default 100 ms interval (the < 1% budget).
#include <benchmark/benchmark.h>

#include <chrono>
#include <thread>

#include "device/device.h"
#include "monitor/monitor.h"

namespace {

using namespace edgellm;

void BM_monitor_sample(benchmark::State& state) {
    monitor::options o;
    o.nvml = device::detect_device().nvml;  // real GPU readings where a driver is present
    monitor::resource_monitor m(o);
    for (auto _ : state) benchmark::DoNotOptimize(m.sample_now());
}
BENCHMARK(BM_monitor_sample)->Unit(benchmark::kMicrosecond);

// Runs the sampler for 3 s at `interval_ms` and reports its CPU use in % of one core.
void BM_monitor_overhead(benchmark::State& state) {
    const double interval_ms = static_cast<double>(state.range(0));
    monitor::summary s;
    for (auto _ : state) {
        monitor::options o;
        o.interval_ms = interval_ms;
        o.nvml = device::detect_device().nvml;
        monitor::resource_monitor m(o);
        m.start();
        std::this_thread::sleep_for(std::chrono::seconds(3));
        m.stop();
        s = m.summarize();
    }
    state.counters["samples"] = s.n_samples;
    state.counters["sampler_cpu_ms"] = s.sampler_cpu_ms;
    state.counters["overhead_pct_of_core"] = s.sampler_overhead_percent;
}
BENCHMARK(BM_monitor_overhead)
    ->Arg(100)
    ->Arg(10)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
