// The sampler thread, summaries and energy integration of the resource monitor (see monitor.h).
#include "monitor/monitor.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "core/timing.h"

namespace edgellm::monitor {
namespace {

double thread_cpu_ms() {
    timespec ts{};
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void add(stat_summary& s, double v) {
    s.peak = s.n == 0 ? v : std::max(s.peak, v);
    s.mean += (v - s.mean) / static_cast<double>(s.n + 1);  // running mean
    ++s.n;
}

}  // namespace

resource_monitor::resource_monitor(options opts) : opts_(std::move(opts)) {
    if (opts_.interval_ms <= 0) opts_.interval_ms = 100;
    start_ms_ = clock_now();
}

double resource_monitor::clock_now() const {
    return opts_.clock_ms ? opts_.clock_ms() : now_ms();
}

resource_monitor::~resource_monitor() {
    stop();
}

void resource_monitor::start() {
    if (running_.exchange(true)) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        samples_.clear();
        last_proc_.reset();
        last_rapl_.clear();
        start_ms_ = clock_now();
    }
    {
        std::lock_guard<std::mutex> lock(wake_mutex_);
        stop_requested_ = false;
    }
    sampler_cpu_ms_ = 0;
    sample_now();
    thread_ = std::thread([this] { loop(); });
}

void resource_monitor::stop() {
    if (!running_.load()) return;
    {
        std::lock_guard<std::mutex> lock(wake_mutex_);
        stop_requested_ = true;
    }
    wake_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    sample_now();
    running_ = false;
}

void resource_monitor::loop() {
    const double cpu_at_start = thread_cpu_ms();
    auto next = std::chrono::steady_clock::now();
    const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double, std::milli>(opts_.interval_ms));
    for (;;) {
        next += interval;
        {
            std::unique_lock<std::mutex> lock(wake_mutex_);
            if (wake_cv_.wait_until(lock, next, [this] { return stop_requested_; })) break;
        }
        sample_now();
        sampler_cpu_ms_ = thread_cpu_ms() - cpu_at_start;
    }
    sampler_cpu_ms_ = thread_cpu_ms() - cpu_at_start;
}

sample resource_monitor::sample_now() {
    std::lock_guard<std::mutex> lock(mutex_);
    sample s = take_sample();
    samples_.push_back(s);
    return s;
}

// Called with mutex_ held.
sample resource_monitor::take_sample() {
    sample s;
    const double t = clock_now();
    s.t_ms = t - start_ms_;
    proc_snapshot p = read_proc_snapshot(opts_.root, opts_.pid);
    s.process_found = p.found;
    s.rss_bytes = p.rss_bytes;
    s.peak_rss_bytes = p.peak_rss_bytes;
    if (last_proc_ && p.found && last_proc_->found) {
        const double wall_s = (t - last_t_ms_) / 1000.0;
        static const double ticks_per_s = static_cast<double>(std::max(sysconf(_SC_CLK_TCK), 1L));
        if (wall_s > 0 && p.process_cpu_ticks >= last_proc_->process_cpu_ticks)
            s.process_cpu_percent =
                100.0 * static_cast<double>(p.process_cpu_ticks - last_proc_->process_cpu_ticks) /
                ticks_per_s / wall_s;
        if (p.system_total_ticks > last_proc_->system_total_ticks &&
            p.system_busy_ticks >= last_proc_->system_busy_ticks)
            s.system_cpu_percent =
                100.0 * static_cast<double>(p.system_busy_ticks - last_proc_->system_busy_ticks) /
                static_cast<double>(p.system_total_ticks - last_proc_->system_total_ticks);
    }
    last_proc_ = p;
    last_t_ms_ = t;

    std::optional<double> gpu_power;
    if (opts_.nvml && opts_.nvml->available()) {
        for (int i = 0; i < opts_.nvml->device_count(); ++i) {
            device::gpu_reading r = opts_.nvml->read(i);
            if (r.memory_used_bytes)
                s.gpu_memory_used_bytes =
                    s.gpu_memory_used_bytes.value_or(0) + *r.memory_used_bytes;
            if (r.utilization_percent)
                s.gpu_utilization_percent =
                    std::max(s.gpu_utilization_percent.value_or(0), *r.utilization_percent);
            if (r.temperature_c)
                s.gpu_temperature_c =
                    std::max(s.gpu_temperature_c.value_or(-273), *r.temperature_c);
            if (r.power_w) gpu_power = gpu_power.value_or(0) + *r.power_w;
        }
    }
    jetson_snapshot j = read_jetson_snapshot(opts_.root);
    if (j.gpu_load_percent && !s.gpu_utilization_percent)
        s.gpu_utilization_percent = j.gpu_load_percent;
    if (j.gpu_temp_c && !s.gpu_temperature_c) s.gpu_temperature_c = j.gpu_temp_c;
    for (const auto& zone : read_thermal_zones(opts_.root))
        s.max_temperature_c = std::max(s.max_temperature_c.value_or(-273), zone.second);
    s.gpu_power_w = gpu_power;
    if (opts_.cpu_package_power) s.cpu_package_power_w = rapl_power_w(t);
    if (j.board_power_w) {
        // The board's input rail already includes the CPU and GPU: adding them would count twice.
        s.power_w = j.board_power_w;
        power_source_ = "jetson board";
    } else if (s.gpu_power_w || s.cpu_package_power_w) {
        s.power_w = s.gpu_power_w.value_or(0) + s.cpu_package_power_w.value_or(0);
        power_source_ = s.gpu_power_w && s.cpu_package_power_w ? "nvml gpu + rapl cpu package"
                        : s.gpu_power_w                        ? "nvml gpu"
                                                               : "rapl cpu package";
    }
    return s;
}

// Mean package power since the previous reading, from the cumulative energy counters; the first
// reading only sets the origin. A counter that went backwards wrapped at max_energy_range_uj.
std::optional<double> resource_monitor::rapl_power_w(double t_ms) {
    std::vector<rapl_zone> now = read_rapl_zones(opts_.root);
    std::optional<double> watts;
    const double dt_s = (t_ms - last_rapl_ms_) / 1000.0;
    if (!last_rapl_.empty() && now.size() == last_rapl_.size() && dt_s > 0) {
        double joules = 0;
        bool ok = true;
        for (size_t i = 0; i < now.size() && ok; ++i) {
            const auto& a = last_rapl_[i];
            const auto& b = now[i];
            if (a.path != b.path)
                ok = false;
            else if (b.energy_uj >= a.energy_uj)
                joules += static_cast<double>(b.energy_uj - a.energy_uj) / 1e6;
            else if (b.max_energy_range_uj > a.energy_uj)
                joules +=
                    static_cast<double>(b.max_energy_range_uj - a.energy_uj + b.energy_uj) / 1e6;
            else
                ok = false;  // went backwards with no known range: not a measurement
        }
        if (ok) watts = joules / dt_s;
    }
    last_rapl_ = std::move(now);
    last_rapl_ms_ = t_ms;
    return watts;
}

std::string resource_monitor::power_source() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return power_source_;
}

std::vector<sample> resource_monitor::samples() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return samples_;
}

std::optional<double> integrate_energy_j(const std::vector<sample>& samples) {
    double joules = 0;
    int n = 0;
    const sample* prev = nullptr;
    for (const auto& s : samples) {
        if (!s.power_w) continue;
        if (prev) joules += 0.5 * (*prev->power_w + *s.power_w) * (s.t_ms - prev->t_ms) / 1000.0;
        prev = &s;
        ++n;
    }
    if (n < 2) return std::nullopt;
    return joules;
}

summary resource_monitor::summarize() const {
    std::vector<sample> all = samples();
    summary out;
    out.n_samples = static_cast<int>(all.size());
    stat_summary rss;
    for (const auto& s : all) {
        add(rss, static_cast<double>(s.rss_bytes));
        out.peak_rss_bytes = std::max({out.peak_rss_bytes, s.peak_rss_bytes, s.rss_bytes});
        if (&s != &all.front()) {  // the first sample has no interval to measure CPU over
            add(out.process_cpu_percent, s.process_cpu_percent);
            add(out.system_cpu_percent, s.system_cpu_percent);
        }
        if (s.gpu_memory_used_bytes)
            add(out.gpu_memory_used_bytes, static_cast<double>(*s.gpu_memory_used_bytes));
        if (s.gpu_utilization_percent) add(out.gpu_utilization_percent, *s.gpu_utilization_percent);
        if (s.gpu_temperature_c) add(out.gpu_temperature_c, *s.gpu_temperature_c);
        if (s.max_temperature_c) add(out.max_temperature_c, *s.max_temperature_c);
        if (s.power_w) add(out.power_w, *s.power_w);
    }
    out.mean_rss_bytes = rss.mean;
    if (!all.empty()) out.duration_ms = all.back().t_ms - all.front().t_ms;
    out.energy_j = integrate_energy_j(all);
    out.sampler_cpu_ms = sampler_cpu_ms_.load();
    if (out.duration_ms > 0)
        out.sampler_overhead_percent = 100.0 * out.sampler_cpu_ms / out.duration_ms;
    return out;
}

std::optional<double> resource_monitor::joules_per_token(uint64_t n_tokens) const {
    if (n_tokens == 0) return std::nullopt;
    auto e = integrate_energy_j(samples());
    if (!e) return std::nullopt;
    return *e / static_cast<double>(n_tokens);
}

}  // namespace edgellm::monitor
