// Resource monitor: /proc and Jetson sysfs readers on fixture trees, GPU readings from a fake
// NVML, RAPL package power from a fake powercap tree, another process by PID, the owner of a
// listening port, energy integration, the sampler thread, and figures on this machine checked
// against the kernel's own accounting (allocate and touch 200 MB; CPU time vs getrusage).
#include "monitor/monitor.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "device/nvml.h"
#include "test_util.h"

using namespace edgellm;
using namespace edgellm::monitor;

namespace {

std::filesystem::path fixture(const std::string& name) {
    return std::filesystem::path(EDGELLM_SOURCE_DIR) / "tests/fixtures/devices" / name;
}

void write_file(const std::filesystem::path& p, const std::string& text) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

// A clock that moves only when read: `step_ms` per call, so sample times are exact.
std::function<double()> stepping_clock(double step_ms) {
    auto t = std::make_shared<double>(0.0);
    return [t, step_ms] { return *t += step_ms; };
}

}  // namespace

TEST(MonitorReaders, ProcSnapshotFromFixture) {
    proc_snapshot s = read_proc_snapshot(fixture("orin-nano-8gb"));
    EXPECT_EQ(s.rss_bytes, 204800ull * 1024);
    EXPECT_EQ(s.peak_rss_bytes, 262144ull * 1024);
    EXPECT_EQ(s.process_cpu_ticks, 400u);  // utime 350 + stime 50, despite "(edgellm (x))"
    // cpu line: user 10000, nice 0, system 2000, idle 80000, iowait 1000, rest 0.
    EXPECT_EQ(s.system_busy_ticks, 12000u);
    EXPECT_EQ(s.system_total_ticks, 93000u);
}

TEST(MonitorReaders, JetsonSysfsOrinNano) {
    jetson_snapshot j = read_jetson_snapshot(fixture("orin-nano-8gb"));
    ASSERT_TRUE(j.gpu_load_percent);
    EXPECT_DOUBLE_EQ(*j.gpu_load_percent, 47.2);  // 472 per mille
    ASSERT_TRUE(j.gpu_temp_c);
    EXPECT_DOUBLE_EQ(*j.gpu_temp_c, 47.25);
    ASSERT_TRUE(j.board_power_w);
    EXPECT_NEAR(*j.board_power_w, 5.080 * 1.420, 1e-9);  // VDD_IN: 5080 mV x 1420 mA
    auto rails = read_power_rails(fixture("orin-nano-8gb"));
    ASSERT_EQ(rails.size(), 3u);
    EXPECT_EQ(rails[1].first, "VDD_CPU_GPU_CV");
    auto zones = read_thermal_zones(fixture("orin-nano-8gb"));
    ASSERT_EQ(zones.size(), 3u);
    EXPECT_EQ(zones[2].first, "soc0-thermal");
    EXPECT_DOUBLE_EQ(zones[2].second, 49.125);
}

TEST(MonitorReaders, JetsonSysfsOrinNxSumsPartialRails) {
    jetson_snapshot j = read_jetson_snapshot(fixture("orin-nx-16gb"));
    ASSERT_TRUE(j.gpu_load_percent);
    EXPECT_DOUBLE_EQ(*j.gpu_load_percent, 100.0);
    ASSERT_TRUE(j.gpu_temp_c);
    EXPECT_DOUBLE_EQ(*j.gpu_temp_c, 55.5);  // "GPU-therm" matches case-insensitively
    ASSERT_TRUE(j.board_power_w);
    EXPECT_NEAR(*j.board_power_w, 10.0 + 5.0, 1e-9);
}

TEST(MonitorReaders, DesktopTreeHasNoJetsonReadings) {
    jetson_snapshot j = read_jetson_snapshot(fixture("x86-rtx"));
    EXPECT_FALSE(j.gpu_load_percent);
    EXPECT_FALSE(j.gpu_temp_c);
    EXPECT_FALSE(j.board_power_w);
}

TEST(Monitor, FixtureSamplesCarryJetsonPowerAndEnergyIntegrates) {
    options o;
    o.root = fixture("orin-nano-8gb");
    resource_monitor m(o);
    sample a = m.sample_now();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    sample b = m.sample_now();
    EXPECT_EQ(a.rss_bytes, 204800ull * 1024);
    ASSERT_TRUE(b.power_w);
    ASSERT_TRUE(b.gpu_utilization_percent);
    EXPECT_DOUBLE_EQ(*b.gpu_utilization_percent, 47.2);
    ASSERT_TRUE(b.max_temperature_c);
    EXPECT_DOUBLE_EQ(*b.max_temperature_c, 49.125);
    // The fixture's counters do not move, so CPU % between the two samples is zero.
    EXPECT_DOUBLE_EQ(b.process_cpu_percent, 0.0);
    summary s = m.summarize();
    EXPECT_EQ(s.n_samples, 2);
    ASSERT_TRUE(s.energy_j);
    EXPECT_NEAR(*s.energy_j, 5.080 * 1.420 * (b.t_ms - a.t_ms) / 1000.0, 1e-9);
    auto jpt = m.joules_per_token(4);
    ASSERT_TRUE(jpt);
    EXPECT_NEAR(*jpt, *s.energy_j / 4, 1e-12);
    EXPECT_FALSE(m.joules_per_token(0));
}

TEST(Monitor, EnergyIsTheTrapezoidIntegralOfPower) {
    std::vector<sample> s(4);
    s[0].t_ms = 0;
    s[0].power_w = 10;
    s[1].t_ms = 1000;
    s[1].power_w = 20;
    s[2].t_ms = 1500;  // no reading: skipped
    s[3].t_ms = 2000;
    s[3].power_w = 30;
    auto e = integrate_energy_j(s);
    ASSERT_TRUE(e);
    EXPECT_DOUBLE_EQ(*e, 15.0 + 25.0);
    EXPECT_FALSE(integrate_energy_j({s[0]}));
}

TEST(Monitor, FakeNvmlReadingsAreSummedAndMaxedOverGpus) {
    device::fake_gpu g0, g1;
    g0.reading = {1ull << 30, 30.0, 50.0, 100.0};
    g1.reading = {2ull << 30, 80.0, 65.0, 200.0};
    auto nvml =
        std::make_shared<device::fake_nvml>("550.0", 12040, std::vector<device::fake_gpu>{g0, g1});
    options o;
    o.root = fixture("x86-rtx");
    o.nvml = nvml;
    resource_monitor m(o);
    sample a = m.sample_now();
    ASSERT_TRUE(a.gpu_memory_used_bytes);
    EXPECT_EQ(*a.gpu_memory_used_bytes, 3ull << 30);
    EXPECT_DOUBLE_EQ(*a.gpu_utilization_percent, 80.0);
    EXPECT_DOUBLE_EQ(*a.gpu_temperature_c, 65.0);
    EXPECT_DOUBLE_EQ(*a.power_w, 300.0);
    nvml->set_reading(1, {4ull << 30, 10.0, 60.0, 100.0});
    m.sample_now();
    summary s = m.summarize();
    EXPECT_EQ(s.gpu_memory_used_bytes.n, 2);
    EXPECT_DOUBLE_EQ(s.gpu_memory_used_bytes.peak, static_cast<double>(5ull << 30));
    EXPECT_DOUBLE_EQ(s.gpu_memory_used_bytes.mean, static_cast<double>(4ull << 30));
    EXPECT_DOUBLE_EQ(s.power_w.peak, 300.0);
    EXPECT_DOUBLE_EQ(s.power_w.mean, 250.0);
}

TEST(MonitorThisMachine, RssRisesByTheTouchedBytes) {
    options o;
    resource_monitor m(o);
    sample before = m.sample_now();
    const size_t n = 200ull * 1000 * 1000;
    std::unique_ptr<char[]> block(new char[n]);
    std::memset(block.get(), 1, n);  // touch every page so it is resident
    sample after = m.sample_now();
    const double rise =
        static_cast<double>(after.rss_bytes) - static_cast<double>(before.rss_bytes);
    EXPECT_GT(rise, 0.95 * n) << "RSS rose by " << rise;
    EXPECT_LT(rise, 1.25 * n) << "RSS rose by " << rise;
    EXPECT_GE(after.peak_rss_bytes, after.rss_bytes);
    // Peak RSS agrees with the kernel's getrusage maximum (KiB granularity, a moment apart).
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    EXPECT_NEAR(static_cast<double>(after.peak_rss_bytes), static_cast<double>(ru.ru_maxrss) * 1024,
                4.0 * 1024 * 1024);
    EXPECT_EQ(block[n - 1], 1);
}

TEST(MonitorThisMachine, ProcessCpuTicksAgreeWithGetrusage) {
    // Burn some CPU so the counters are well above their 10 ms granularity.
    volatile double x = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
    while (std::chrono::steady_clock::now() < until) x = x + 1.0;
    proc_snapshot p = read_proc_snapshot("/");
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double ru_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                        static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    const double proc_s =
        static_cast<double>(p.process_cpu_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
    EXPECT_NEAR(proc_s, ru_s, 0.05);
    EXPECT_GT(p.system_total_ticks, p.system_busy_ticks);
}

TEST(MonitorThisMachine, SamplerThreadRecordsAtItsInterval) {
    options o;
    o.interval_ms = 10;
    o.cpu_package_power = false;  // RAPL may be readable here (root on x86): keep "no power"
    resource_monitor m(o);
    m.start();
    EXPECT_TRUE(m.running());
    // Keep one core busy so process CPU % has something to show.
    volatile double x = 0;
    // 250 ms, and on a loaded machine (where the sampler thread waits for a core) until it has
    // taken 6 samples, within 10 s.
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0;; ++i) {
        x = x + 1.0;
        if (i % 4096 != 0) continue;
        const auto now = std::chrono::steady_clock::now();
        if (now - t0 > std::chrono::seconds(10)) break;
        if (now - t0 >= std::chrono::milliseconds(250) && m.samples().size() >= 6u) break;
    }
    m.stop();
    m.stop();  // idempotent
    EXPECT_FALSE(m.running());
    auto all = m.samples();
    // start + ~25 timed samples + stop; generous bounds for a loaded machine.
    EXPECT_GE(all.size(), 6u);
    // At most one sample per 10 ms interval, plus the start and stop samples.
    EXPECT_LE(static_cast<double>(all.size()), (all.back().t_ms - all.front().t_ms) / 10.0 + 3.0);
    for (size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i].t_ms, all[i - 1].t_ms);
    summary s = m.summarize();
    EXPECT_EQ(s.n_samples, static_cast<int>(all.size()));
    EXPECT_GT(s.duration_ms, 200.0);
    EXPECT_GT(s.process_cpu_percent.peak, 0.0);
    EXPECT_LE(s.system_cpu_percent.peak, 100.0);
    EXPECT_GE(s.sampler_cpu_ms, 0.0);
    EXPECT_FALSE(s.energy_j);  // no power source here (unless real NVML were passed)
}

TEST(MonitorRapl, PackagePowerFromEnergyCountersWithWraparound) {
    auto root = test::temp_dir("rapl");
    const auto pkg = root / "sys/class/powercap/intel-rapl:0";
    write_file(pkg / "name", "package-0\n");
    write_file(pkg / "max_energy_range_uj", "10000000\n");
    write_file(pkg / "energy_uj", "1000000\n");
    // A subzone is part of its package: counting it too would double the power.
    write_file(root / "sys/class/powercap/intel-rapl:0:0/energy_uj", "999999999\n");
    auto zones = read_rapl_zones(root);
    ASSERT_EQ(zones.size(), 1u);
    EXPECT_EQ(zones[0].name, "package-0");
    EXPECT_EQ(zones[0].max_energy_range_uj, 10000000u);

    options o;
    o.root = root;
    o.clock_ms = stepping_clock(250);  // every sample 250 ms after the previous one
    resource_monitor m(o);
    sample a = m.sample_now();
    EXPECT_FALSE(a.power_w);  // the first counter reading only sets the origin
    write_file(pkg / "energy_uj", "3000000\n");  // +2 J in 0.25 s
    sample b = m.sample_now();
    ASSERT_TRUE(b.cpu_package_power_w);
    EXPECT_DOUBLE_EQ(*b.cpu_package_power_w, 8.0);
    ASSERT_TRUE(b.power_w);
    EXPECT_DOUBLE_EQ(*b.power_w, 8.0);
    EXPECT_FALSE(b.gpu_power_w);
    EXPECT_EQ(m.power_source(), "rapl cpu package");
    write_file(pkg / "energy_uj", "500000\n");  // wrapped: 7 J to the top, then 0.5 J
    sample c = m.sample_now();
    ASSERT_TRUE(c.power_w);
    EXPECT_DOUBLE_EQ(*c.power_w, 7.5 / 0.25);
    // Two power readings 250 ms apart: (8 + 30) / 2 W * 0.25 s.
    auto e = integrate_energy_j(m.samples());
    ASSERT_TRUE(e);
    EXPECT_DOUBLE_EQ(*e, 19.0 * 0.25);
    std::filesystem::remove_all(root);
}

TEST(MonitorRapl, UnreadableOrMissingCountersAreNoPowerNotAnError) {
    auto root = test::temp_dir("rapl-none");
    // A zone without its energy file (what an unprivileged reader effectively sees).
    write_file(root / "sys/class/powercap/intel-rapl:0/name", "package-0\n");
    EXPECT_TRUE(read_rapl_zones(root).empty());
    options o;
    o.root = root;
    resource_monitor m(o);
    m.sample_now();
    sample b = m.sample_now();
    EXPECT_FALSE(b.power_w);
    EXPECT_FALSE(b.cpu_package_power_w);
    EXPECT_EQ(m.power_source(), "");
    std::filesystem::remove_all(root);
}

TEST(MonitorRapl, JetsonBoardPowerIsNotAddedToPackagePower) {
    // VDD_IN already covers the CPU: a RAPL figure beside it must not be summed in.
    auto root = test::temp_dir("rapl-jetson");
    std::filesystem::copy(fixture("orin-nano-8gb"), root, std::filesystem::copy_options::recursive);
    write_file(root / "sys/class/powercap/intel-rapl:0/energy_uj", "0\n");
    options o;
    o.root = root;
    o.clock_ms = stepping_clock(100);
    resource_monitor m(o);
    m.sample_now();
    write_file(root / "sys/class/powercap/intel-rapl:0/energy_uj", "100000\n");
    sample b = m.sample_now();
    ASSERT_TRUE(b.power_w);
    EXPECT_DOUBLE_EQ(*b.power_w, 5.080 * 1.420);
    EXPECT_EQ(m.power_source(), "jetson board");
    std::filesystem::remove_all(root);
}

TEST(MonitorProcess, FollowsAnotherProcessByPid) {
    auto root = test::temp_dir("pid");
    write_file(root / "proc/4242/status", "Name:\tpython3\nVmHWM:\t  90000 kB\nVmRSS:\t  81234 kB\n");
    write_file(root / "proc/4242/stat", "4242 (python3 -m x) S 1 1 1 0 -1 0 0 0 0 0 321 79 0 0 20 0 3 0\n");
    write_file(root / "proc/4242/comm", "python3\n");
    proc_snapshot p = read_proc_snapshot(root, 4242);
    EXPECT_TRUE(p.found);
    EXPECT_EQ(p.rss_bytes, 81234ull * 1024);
    EXPECT_EQ(p.peak_rss_bytes, 90000ull * 1024);
    EXPECT_EQ(p.process_cpu_ticks, 400u);
    EXPECT_EQ(process_name(4242, root), "python3");
    EXPECT_FALSE(read_proc_snapshot(root, 4243).found);  // gone: not found, not zero RSS "measured"

    options o;
    o.root = root;
    o.pid = 4243;
    resource_monitor m(o);
    EXPECT_FALSE(m.sample_now().process_found);
    std::filesystem::remove_all(root);
}

TEST(MonitorThisMachine, FindsTheProcessListeningOnALocalPort) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const int port = ntohs(a.sin_port);
    EXPECT_FALSE(find_listening_pid(port));  // bound but not listening yet
    ASSERT_EQ(::listen(fd, 1), 0);
    auto pid = find_listening_pid(port);
    ASSERT_TRUE(pid);
    EXPECT_EQ(*pid, static_cast<int>(getpid()));
    proc_snapshot p = read_proc_snapshot("/", *pid);
    EXPECT_TRUE(p.found);
    EXPECT_GT(p.rss_bytes, 0u);
    ::close(fd);
    EXPECT_FALSE(find_listening_pid(port));
    EXPECT_FALSE(find_listening_pid(0));
    EXPECT_FALSE(find_listening_pid(70000));
}
