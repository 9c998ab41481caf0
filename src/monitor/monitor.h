// Resource monitor: a sampler thread recording process RSS and peak RSS, process and system
// CPU %, GPU memory/utilisation/temperature/power (NVML or Jetson sysfs), thermal zones and
// power rails, with timestamps; summaries and energy per token for reports.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "device/nvml.h"

namespace edgellm::monitor {

// Raw counters read from /proc (and sysfs) at one instant.
struct proc_snapshot {
    uint64_t rss_bytes = 0;          // VmRSS of /proc/self/status
    uint64_t peak_rss_bytes = 0;     // VmHWM
    uint64_t process_cpu_ticks = 0;  // utime + stime of /proc/self/stat
    uint64_t system_busy_ticks = 0;  // first line of /proc/stat, everything but idle+iowait
    uint64_t system_total_ticks = 0;
};

// Jetson sysfs readings; a field is absent when its file is missing.
struct jetson_snapshot {
    std::optional<double> gpu_load_percent;  // .../gpu.0/load (per mille) / 10
    std::optional<double> gpu_temp_c;        // thermal zone named gpu-thermal / GPU-therm
    std::optional<double> board_power_w;     // INA3221 VDD_IN, or the sum of the rails
};

// Reads below `root` ("/" normally) so tests can use fixture trees.
proc_snapshot read_proc_snapshot(const std::filesystem::path& root);
jetson_snapshot read_jetson_snapshot(const std::filesystem::path& root);
// Every thermal zone: (type, °C).
std::vector<std::pair<std::string, double>> read_thermal_zones(const std::filesystem::path& root);
// INA3221 rails: (label, watts), from hwmon (JetPack 5/6) or the older iio driver.
std::vector<std::pair<std::string, double>> read_power_rails(const std::filesystem::path& root);

struct sample {
    double t_ms = 0;  // since the monitor started
    uint64_t rss_bytes = 0;
    uint64_t peak_rss_bytes = 0;
    double process_cpu_percent = 0;                 // 100 = one core busy (like top)
    double system_cpu_percent = 0;                  // 0..100 over all cores
    std::optional<uint64_t> gpu_memory_used_bytes;  // summed over the GPUs
    std::optional<double> gpu_utilization_percent;  // the busiest GPU
    std::optional<double> gpu_temperature_c;        // the hottest GPU
    std::optional<double> max_temperature_c;        // the hottest thermal zone
    std::optional<double> power_w;  // board power (Jetson VDD_IN) or summed GPU power
};

struct stat_summary {
    double peak = 0, mean = 0;
    int n = 0;  // samples that had the value
};

struct summary {
    int n_samples = 0;
    double duration_ms = 0;
    uint64_t peak_rss_bytes = 0;  // VmHWM at the end: the true peak, even between samples
    double mean_rss_bytes = 0;
    stat_summary process_cpu_percent, system_cpu_percent;
    stat_summary gpu_memory_used_bytes, gpu_utilization_percent, gpu_temperature_c,
        max_temperature_c, power_w;
    std::optional<double> energy_j;       // integral of power over the run
    double sampler_cpu_ms = 0;            // CPU time the sampler thread itself used
    double sampler_overhead_percent = 0;  // of one core, over the run
};

struct options {
    double interval_ms = 100;
    std::filesystem::path root = "/";
    // GPU readings; null for none. Jetson sysfs is read whenever its files exist under root.
    std::shared_ptr<const device::nvml_interface> nvml;
};

// Samples in a background thread between start() and stop(). Thread-safe accessors.
class resource_monitor {
  public:
    explicit resource_monitor(options opts = {});
    ~resource_monitor();
    resource_monitor(const resource_monitor&) = delete;
    resource_monitor& operator=(const resource_monitor&) = delete;

    void start();  // takes a first sample at once, then one per interval
    void stop();   // takes a last sample; idempotent
    bool running() const { return running_.load(); }
    // Takes one sample now (also works without start(); CPU % is relative to the previous one).
    sample sample_now();

    std::vector<sample> samples() const;
    summary summarize() const;
    // Joules per generated token, when power was measured.
    std::optional<double> joules_per_token(uint64_t n_tokens) const;

  private:
    void loop();
    sample take_sample();

    options opts_;
    std::atomic<bool> running_{false};
    std::thread thread_;
    std::mutex wake_mutex_;
    std::condition_variable wake_cv_;
    bool stop_requested_ = false;
    mutable std::mutex mutex_;
    std::vector<sample> samples_;
    std::optional<proc_snapshot> last_proc_;
    double last_t_ms_ = 0;
    double start_ms_ = 0;
    std::atomic<double> sampler_cpu_ms_{0};
};

// Trapezoidal integral of power_w over t_ms, in joules; nullopt with fewer than two readings.
std::optional<double> integrate_energy_j(const std::vector<sample>& samples);

}  // namespace edgellm::monitor
