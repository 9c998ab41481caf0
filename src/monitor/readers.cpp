// /proc and sysfs readers of the resource monitor: process memory and CPU, system CPU, Jetson
// GPU load, thermal zones and INA3221 power rails (see monitor.h).
#include <string>

#include "device/sysfs.h"
#include "monitor/monitor.h"

namespace edgellm::monitor {

using device::contains_nocase;
using device::list_dir;
using device::parse_int;
using device::read_int;
using device::read_line;
using device::read_text;
using device::split;
using device::split_ws;
using device::under_root;

proc_snapshot read_proc_snapshot(const std::filesystem::path& root) {
    proc_snapshot s;
    if (auto status = read_text(under_root(root, "/proc/self/status"))) {
        for (const auto& line : split(*status, '\n')) {
            auto parts = split_ws(line);
            if (parts.size() < 2) continue;
            auto kb = parse_int(parts[1]);
            if (!kb || *kb < 0) continue;
            if (parts[0] == "VmRSS:")
                s.rss_bytes = static_cast<uint64_t>(*kb) * 1024;
            else if (parts[0] == "VmHWM:")
                s.peak_rss_bytes = static_cast<uint64_t>(*kb) * 1024;
        }
    }
    if (auto stat = read_text(under_root(root, "/proc/self/stat"))) {
        // The command name (field 2) may hold spaces and parentheses: fields after the last ')'
        // start at field 3 (state); utime and stime are fields 14 and 15.
        auto close = stat->rfind(')');
        if (close != std::string::npos) {
            auto fields = split_ws(std::string_view(*stat).substr(close + 1));
            if (fields.size() > 12) {
                auto ut = parse_int(fields[11]), st = parse_int(fields[12]);
                if (ut && st && *ut >= 0 && *st >= 0)
                    s.process_cpu_ticks = static_cast<uint64_t>(*ut + *st);
            }
        }
    }
    if (auto stat = read_text(under_root(root, "/proc/stat"))) {
        auto line = stat->substr(0, stat->find('\n'));
        auto fields = split_ws(line);
        if (!fields.empty() && fields[0] == "cpu") {
            // user nice system idle iowait irq softirq steal (guest time is inside user/nice)
            for (size_t i = 1; i < fields.size() && i <= 8; ++i) {
                auto v = parse_int(fields[i]);
                if (!v || *v < 0) continue;
                s.system_total_ticks += static_cast<uint64_t>(*v);
                if (i != 4 && i != 5) s.system_busy_ticks += static_cast<uint64_t>(*v);
            }
        }
    }
    return s;
}

std::vector<std::pair<std::string, double>> read_thermal_zones(const std::filesystem::path& root) {
    std::vector<std::pair<std::string, double>> zones;
    for (const auto& dir : list_dir(under_root(root, "/sys/class/thermal"), "thermal_zone")) {
        auto type = read_line(dir / "type");
        auto temp = read_int(dir / "temp");
        // Disabled zones report -256000 or similar; ignore values below absolute zero.
        if (type && temp && *temp > -273000)
            zones.emplace_back(*type, static_cast<double>(*temp) / 1000.0);
    }
    return zones;
}

std::vector<std::pair<std::string, double>> read_power_rails(const std::filesystem::path& root) {
    std::vector<std::pair<std::string, double>> rails;
    // JetPack 5/6: hwmon ina3221 with inN_label, inN_input (mV) and currN_input (mA).
    for (const auto& dir : list_dir(under_root(root, "/sys/class/hwmon"), "hwmon")) {
        auto name = read_line(dir / "name");
        if (!name || *name != "ina3221") continue;
        for (int ch = 1; ch <= 4; ++ch) {
            auto label = read_line(dir / ("in" + std::to_string(ch) + "_label"));
            auto mv = read_int(dir / ("in" + std::to_string(ch) + "_input"));
            auto ma = read_int(dir / ("curr" + std::to_string(ch) + "_input"));
            if (label && mv && ma && label->find("sum") == std::string::npos)
                rails.emplace_back(*label,
                                   static_cast<double>(*mv) * static_cast<double>(*ma) / 1e6);
        }
    }
    if (!rails.empty()) return rails;
    // JetPack 4 (Nano, TX2, Xavier): iio ina3221x with rail_name_N and in_power N_input (mW).
    for (const auto& i2c : list_dir(under_root(root, "/sys/bus/i2c/drivers/ina3221x"))) {
        for (const auto& dev : list_dir(i2c, "iio:device")) {
            for (int ch = 0; ch < 3; ++ch) {
                auto label = read_line(dev / ("rail_name_" + std::to_string(ch)));
                auto mw = read_int(dev / ("in_power" + std::to_string(ch) + "_input"));
                if (label && mw) rails.emplace_back(*label, static_cast<double>(*mw) / 1000.0);
            }
        }
    }
    return rails;
}

jetson_snapshot read_jetson_snapshot(const std::filesystem::path& root) {
    jetson_snapshot s;
    // The GPU load file moved between L4T releases; values are per mille.
    static const char* load_paths[] = {
        "/sys/devices/gpu.0/load",
        "/sys/devices/platform/gpu.0/load",
        "/sys/devices/platform/bus@0/17000000.gpu/load",
        "/sys/devices/platform/17000000.ga10b/load",
        "/sys/devices/platform/17000000.gv11b/load",
        "/sys/devices/platform/57000000.gpu/load",
    };
    for (const char* p : load_paths) {
        if (auto v = read_int(under_root(root, p)); v && *v >= 0) {
            s.gpu_load_percent = static_cast<double>(*v) / 10.0;
            break;
        }
    }
    for (const auto& [type, temp] : read_thermal_zones(root)) {
        if (contains_nocase(type, "gpu") && (!s.gpu_temp_c || temp > *s.gpu_temp_c))
            s.gpu_temp_c = temp;
    }
    auto rails = read_power_rails(root);
    double sum = 0;
    for (const auto& [label, w] : rails) {
        // The module's input rail is the whole-board figure; the others are parts of it.
        if (label == "VDD_IN" || label == "POM_5V_IN") {
            s.board_power_w = w;
            break;
        }
        sum += w;
    }
    if (!s.board_power_w && !rails.empty()) s.board_power_w = sum;
    return s;
}

}  // namespace edgellm::monitor
