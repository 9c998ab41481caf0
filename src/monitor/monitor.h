// Resource monitor: a sampler thread recording a process's RSS and peak RSS (this one or a
// server's, by PID), process and system CPU %, GPU memory/utilisation/temperature/power (NVML or
// Jetson sysfs), CPU package power (Linux RAPL), thermal zones and power rails, with
// timestamps; summaries and energy per token for reports.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
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
    bool found = false;              // the process's status file was readable
    uint64_t rss_bytes = 0;          // VmRSS of /proc/<pid>/status
    uint64_t peak_rss_bytes = 0;     // VmHWM
    uint64_t process_cpu_ticks = 0;  // utime + stime of /proc/<pid>/stat
    uint64_t system_busy_ticks = 0;  // first line of /proc/stat, everything but idle+iowait
    uint64_t system_total_ticks = 0;
};

// Jetson sysfs readings; a field is absent when its file is missing.
struct jetson_snapshot {
    std::optional<double> gpu_load_percent;  // .../gpu.0/load (per mille) / 10
    std::optional<double> gpu_temp_c;        // thermal zone named gpu-thermal / GPU-therm
    std::optional<double> board_power_w;     // INA3221 VDD_IN, or the sum of the rails
};

// One RAPL power zone's cumulative energy counter (intel-rapl:N, a CPU package).
struct rapl_zone {
    std::string name;                  // "package-0"
    std::filesystem::path path;        // the zone's directory
    uint64_t energy_uj = 0;            // energy_uj: microjoules since an arbitrary origin
    uint64_t max_energy_range_uj = 0;  // where energy_uj wraps to 0; 0 when unknown
};

// Reads below `root` ("/" normally) so tests can use fixture trees. pid 0 means /proc/self.
proc_snapshot read_proc_snapshot(const std::filesystem::path& root, int pid = 0);
// The top-level RAPL zones (packages; their subzones are parts of them) whose energy_uj is
// readable. Empty on non-Intel/AMD machines and, usually, without root (energy_uj is 0400).
std::vector<rapl_zone> read_rapl_zones(const std::filesystem::path& root);
// The process listening on a local TCP port (from /proc/net/tcp{,6} and the owners of the
// socket inode under /proc/<pid>/fd); nullopt when none is found or the owner's fd table is
// unreadable (another user's process). Lets the bench follow a server it did not start.
std::optional<int> find_listening_pid(int port, const std::filesystem::path& root = "/");
// /proc/<pid>/comm ("python3"); empty when unreadable.
std::string process_name(int pid, const std::filesystem::path& root = "/");
jetson_snapshot read_jetson_snapshot(const std::filesystem::path& root);
// Every thermal zone: (type, °C).
std::vector<std::pair<std::string, double>> read_thermal_zones(const std::filesystem::path& root);
// INA3221 rails: (label, watts), from hwmon (JetPack 5/6) or the older iio driver.
std::vector<std::pair<std::string, double>> read_power_rails(const std::filesystem::path& root);

struct sample {
    double t_ms = 0;            // since the monitor started
    bool process_found = true;  // false: the followed process was gone or unreadable
    uint64_t rss_bytes = 0;
    uint64_t peak_rss_bytes = 0;
    double process_cpu_percent = 0;                 // 100 = one core busy (like top)
    double system_cpu_percent = 0;                  // 0..100 over all cores
    std::optional<uint64_t> gpu_memory_used_bytes;  // summed over the GPUs
    std::optional<double> gpu_utilization_percent;  // the busiest GPU
    std::optional<double> gpu_temperature_c;        // the hottest GPU
    std::optional<double> max_temperature_c;        // the hottest thermal zone
    std::optional<double> gpu_power_w;              // summed over the GPUs (NVML)
    std::optional<double> cpu_package_power_w;      // RAPL packages, averaged since the last sample
    // What the device drew: Jetson board power (VDD_IN, covers CPU and GPU), else the sum of
    // the GPU and CPU package power that could be read; absent when none could.
    std::optional<double> power_w;
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
    int pid = 0;                    // the process whose RSS and CPU time are sampled; 0 = this one
    bool cpu_package_power = true;  // read RAPL when readable (never fails when it is not)
    // Milliseconds on a monotonic clock; null = core/timing's now_ms. Tests step it by hand.
    std::function<double()> clock_ms;
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
    // Where power_w came from in the latest sample ("jetson board", "nvml gpu", "rapl cpu
    // package", "nvml gpu + rapl cpu package"); empty when no power was read.
    std::string power_source() const;

  private:
    void loop();
    sample take_sample();
    double clock_now() const;
    std::optional<double> rapl_power_w(double t_ms);

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
    std::vector<rapl_zone> last_rapl_;
    double last_rapl_ms_ = 0;
    std::string power_source_;
    std::atomic<double> sampler_cpu_ms_{0};
};

// Trapezoidal integral of power_w over t_ms, in joules; nullopt with fewer than two readings.
std::optional<double> integrate_energy_j(const std::vector<sample>& samples);

}  // namespace edgellm::monitor
