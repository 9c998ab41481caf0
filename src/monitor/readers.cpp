// /proc and sysfs readers of the resource monitor: process memory and CPU (this process or
// another by PID), system CPU, Jetson GPU load, thermal zones, INA3221 power rails, RAPL energy
// counters, and the owner of a listening TCP port (see monitor.h).
#include <cctype>
#include <string>
#include <system_error>

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

proc_snapshot read_proc_snapshot(const std::filesystem::path& root, int pid) {
    proc_snapshot s;
    const std::string proc_dir =
        pid > 0 ? "/proc/" + std::to_string(pid) : std::string("/proc/self");
    if (auto status = read_text(under_root(root, proc_dir + "/status"))) {
        s.found = true;
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
    if (auto stat = read_text(under_root(root, proc_dir + "/stat"))) {
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

std::vector<rapl_zone> read_rapl_zones(const std::filesystem::path& root) {
    std::vector<rapl_zone> zones;
    for (const auto& dir : list_dir(under_root(root, "/sys/class/powercap"), "intel-rapl:")) {
        // "intel-rapl:0" is a package; "intel-rapl:0:1" is a part of it (core, uncore, dram).
        if (dir.filename().string().find(':', 11) != std::string::npos) continue;
        auto energy = read_int(dir / "energy_uj");
        if (!energy || *energy < 0) continue;  // unreadable without root on recent kernels
        rapl_zone z;
        z.path = dir;
        z.name = read_line(dir / "name").value_or(dir.filename().string());
        z.energy_uj = static_cast<uint64_t>(*energy);
        if (auto range = read_int(dir / "max_energy_range_uj"); range && *range > 0)
            z.max_energy_range_uj = static_cast<uint64_t>(*range);
        zones.push_back(std::move(z));
    }
    return zones;
}

namespace {

// Socket inodes of the TCP sockets listening on `port` (state 0A) in a /proc/net/tcp table.
void listening_inodes(const std::filesystem::path& table, int port, std::vector<std::string>& out) {
    auto text = read_text(table);
    if (!text) return;
    bool header = true;
    for (const auto& line : split(*text, '\n')) {
        if (header) {
            header = false;
            continue;
        }
        auto f = split_ws(line);
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        if (f.size() < 10 || f[3] != "0A") continue;
        auto colon = f[1].rfind(':');
        if (colon == std::string::npos) continue;
        try {
            if (std::stoi(f[1].substr(colon + 1), nullptr, 16) == port && f[9] != "0")
                out.push_back(f[9]);
        } catch (const std::exception&) {
            continue;  // a malformed line says nothing about the port
        }
    }
}

bool all_digits(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

}  // namespace

std::optional<int> find_listening_pid(int port, const std::filesystem::path& root) {
    if (port <= 0 || port > 65535) return std::nullopt;
    std::vector<std::string> inodes;
    listening_inodes(under_root(root, "/proc/net/tcp"), port, inodes);
    listening_inodes(under_root(root, "/proc/net/tcp6"), port, inodes);
    if (inodes.empty()) return std::nullopt;
    std::vector<std::string> targets;
    for (const auto& inode : inodes) targets.push_back("socket:[" + inode + "]");
    std::error_code ec;
    // Processes come and go while /proc is listed; a failed step means "not found", not an error.
    try {
        for (const auto& proc :
             std::filesystem::directory_iterator(under_root(root, "/proc"), ec)) {
            const std::string name = proc.path().filename().string();
            if (!all_digits(name)) continue;
            std::error_code fd_ec;
            for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", fd_ec)) {
                std::error_code link_ec;
                auto target = std::filesystem::read_symlink(fd.path(), link_ec).string();
                if (link_ec) continue;
                for (const auto& t : targets)
                    if (target == t) return std::stoi(name);
            }
        }
    } catch (const std::exception&) {
        return std::nullopt;
    }
    return std::nullopt;
}

std::string process_name(int pid, const std::filesystem::path& root) {
    if (pid <= 0) return {};
    return read_line(under_root(root, "/proc/" + std::to_string(pid) + "/comm")).value_or("");
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
