// Reads /proc/cpuinfo, /proc/meminfo, sysfs CPU topology and cgroup limits (see cpu_info.h).
#include "device/cpu_info.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "device/sysfs.h"

namespace edgellm::device {
namespace {

// Arm "CPU implementer" / "CPU part" pairs we expect on edge boards; unknown parts print as hex.
std::string arm_part_name(int64_t implementer, int64_t part) {
    if (implementer == 0x41) {
        switch (part) {
            case 0xd03:
                return "Cortex-A53";
            case 0xd04:
                return "Cortex-A35";
            case 0xd05:
                return "Cortex-A55";
            case 0xd07:
                return "Cortex-A57";
            case 0xd08:
                return "Cortex-A72";
            case 0xd09:
                return "Cortex-A73";
            case 0xd0a:
                return "Cortex-A75";
            case 0xd0b:
                return "Cortex-A76";
            case 0xd0c:
                return "Neoverse-N1";
            case 0xd0d:
                return "Cortex-A77";
            case 0xd40:
                return "Neoverse-V1";
            case 0xd41:
                return "Cortex-A78";
            case 0xd42:
                return "Cortex-A78AE";
            case 0xd44:
                return "Cortex-X1";
            case 0xd46:
                return "Cortex-A510";
            case 0xd47:
                return "Cortex-A710";
            case 0xd48:
                return "Cortex-X2";
            case 0xd49:
                return "Neoverse-N2";
            case 0xd4b:
                return "Cortex-A78C";
            case 0xd4f:
                return "Neoverse-V2";
            default:
                break;
        }
    }
    if (implementer == 0x4e && part == 0x004) return "NVIDIA Carmel";
    return fmt::format("Arm part 0x{:03x}", part);
}

std::string arm_vendor_name(int64_t implementer) {
    switch (implementer) {
        case 0x41:
            return "ARM";
        case 0x4e:
            return "NVIDIA";
        case 0x51:
            return "Qualcomm";
        case 0x61:
            return "Apple";
        case 0xc0:
            return "Ampere";
        default:
            break;
    }
    return fmt::format("Arm implementer 0x{:02x}", implementer);
}

std::optional<int64_t> parse_hex_or_dec(const std::string& s) {
    std::string t = trim(s);
    if (starts_with(t, "0x") || starts_with(t, "0X")) {
        try {
            size_t used = 0;
            long long v = std::stoll(t.substr(2), &used, 16);
            if (used != t.size() - 2) return std::nullopt;
            return v;
        } catch (...) {
            return std::nullopt;
        }
    }
    return parse_int(t);
}

void apply_flag(cpu_features& f, const std::string& flag) {
    // x86 /proc/cpuinfo "flags"
    if (flag == "pni")
        f.sse3 = true;
    else if (flag == "ssse3")
        f.ssse3 = true;
    else if (flag == "avx")
        f.avx = true;
    else if (flag == "avx2")
        f.avx2 = true;
    else if (flag == "fma")
        f.fma = true;
    else if (flag == "f16c")
        f.f16c = true;
    else if (flag == "avx512f")
        f.avx512f = true;
    else if (flag == "avx512bw")
        f.avx512bw = true;
    else if (flag == "avx512vl")
        f.avx512vl = true;
    else if (flag == "avx512dq")
        f.avx512dq = true;
    else if (flag == "avx512_vnni")
        f.avx512_vnni = true;
    else if (flag == "avx512_bf16")
        f.avx512_bf16 = true;
    else if (flag == "avx_vnni")
        f.avx_vnni = true;
    else if (flag == "amx_tile")
        f.amx = true;
    // Arm "Features": asimd is Advanced SIMD (NEON), asimddp the SDOT/UDOT dot product,
    // asimdhp half-precision arithmetic.
    else if (flag == "asimd" || flag == "neon")
        f.neon = true;
    else if (flag == "asimddp")
        f.dotprod = true;
    else if (flag == "asimdhp")
        f.fp16 = true;
    else if (flag == "i8mm")
        f.i8mm = true;
    else if (flag == "sve")
        f.sve = true;
    else if (flag == "sve2")
        f.sve2 = true;
}

// Physical cores from sysfs: each distinct thread_siblings_list is one core.
int physical_from_sysfs(const std::filesystem::path& root) {
    std::set<std::string> cores;
    for (const auto& dir : list_dir(under_root(root, "/sys/devices/system/cpu"), "cpu")) {
        std::string name = dir.filename().string();
        if (name.size() <= 3 || !std::all_of(name.begin() + 3, name.end(), ::isdigit)) continue;
        auto siblings = read_line(dir / "topology" / "thread_siblings_list");
        if (!siblings) siblings = read_line(dir / "topology" / "core_cpus_list");
        if (siblings) cores.insert(*siblings);
    }
    return static_cast<int>(cores.size());
}

std::optional<uint64_t> parse_limit(const std::optional<std::string>& s) {
    if (!s) return std::nullopt;
    auto v = parse_int(*s);
    // cgroup v1 reports "no limit" as a huge page-rounded number (~2^63).
    if (!v || *v <= 0 || *v >= (int64_t{1} << 62)) return std::nullopt;
    return static_cast<uint64_t>(*v);
}

}  // namespace

std::vector<std::string> cpu_features::names() const {
    std::vector<std::string> out;
    auto add = [&](bool on, const char* name) {
        if (on) out.emplace_back(name);
    };
    add(sse3, "SSE3");
    add(ssse3, "SSSE3");
    add(avx, "AVX");
    add(avx2, "AVX2");
    add(fma, "FMA");
    add(f16c, "F16C");
    add(avx512f, "AVX512F");
    add(avx512bw, "AVX512BW");
    add(avx512vl, "AVX512VL");
    add(avx512dq, "AVX512DQ");
    add(avx512_vnni, "AVX512_VNNI");
    add(avx512_bf16, "AVX512_BF16");
    add(avx_vnni, "AVX_VNNI");
    add(amx, "AMX");
    add(neon, "NEON");
    add(dotprod, "DOTPROD");
    add(fp16, "FP16");
    add(i8mm, "I8MM");
    add(sve, "SVE");
    add(sve2, "SVE2");
    return out;
}

cpu_info read_cpu_info(const std::filesystem::path& root) {
    cpu_info info;
    std::set<std::pair<std::string, std::string>> x86_cores;  // (physical id, core id)
    std::string physical_id;
    int64_t arm_implementer = -1, arm_part = -1;
    bool saw_x86_flags = false, saw_arm_features = false;
    std::string hardware;

    if (auto text = read_text(under_root(root, "/proc/cpuinfo"))) {
        for (const auto& line : split(*text, '\n')) {
            auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string key = trim(std::string_view(line).substr(0, colon));
            std::string val = trim(std::string_view(line).substr(colon + 1));
            if (key == "processor") {
                ++info.n_logical;
            } else if (key == "vendor_id") {
                info.vendor = val;
            } else if (key == "model name" && info.model_name.empty()) {
                info.model_name = val;
            } else if (key == "flags") {
                saw_x86_flags = true;
                for (const auto& f : split_ws(val)) apply_flag(info.features, f);
            } else if (key == "Features") {
                saw_arm_features = true;
                for (const auto& f : split_ws(val)) apply_flag(info.features, f);
            } else if (key == "physical id") {
                physical_id = val;
            } else if (key == "core id") {
                x86_cores.insert({physical_id, val});
            } else if (key == "CPU implementer" && arm_implementer < 0) {
                arm_implementer = parse_hex_or_dec(val).value_or(-1);
            } else if (key == "CPU part" && arm_part < 0) {
                arm_part = parse_hex_or_dec(val).value_or(-1);
            } else if (key == "Hardware") {
                hardware = val;
            }
        }
    }
    if (info.n_logical == 0) {
        for (const auto& dir : list_dir(under_root(root, "/sys/devices/system/cpu"), "cpu")) {
            std::string name = dir.filename().string();
            if (name.size() > 3 && std::all_of(name.begin() + 3, name.end(), ::isdigit))
                ++info.n_logical;
        }
    }

    if (saw_x86_flags) {
        info.arch = "x86_64";
    } else if (saw_arm_features) {
        info.arch = "aarch64";
        if (arm_implementer >= 0) info.vendor = arm_vendor_name(arm_implementer);
        if (info.model_name.empty() && arm_implementer >= 0 && arm_part >= 0)
            info.model_name = arm_part_name(arm_implementer, arm_part);
        if (info.model_name.empty()) info.model_name = hardware;
    } else {
        info.arch = "unknown";
    }

    int physical = physical_from_sysfs(root);
    if (physical == 0 && !x86_cores.empty()) physical = static_cast<int>(x86_cores.size());
    if (physical == 0 || physical > info.n_logical) physical = info.n_logical;
    info.n_physical = physical;
    return info;
}

memory_info read_memory_info(const std::filesystem::path& root) {
    memory_info m;
    std::optional<uint64_t> available, free_kb, buffers, cached;
    auto text = read_text(under_root(root, "/proc/meminfo"));
    if (!text) return m;
    for (const auto& line : split(*text, '\n')) {
        auto parts = split_ws(line);
        if (parts.size() < 2) continue;
        auto v = parse_int(parts[1]);
        if (!v || *v < 0) continue;
        uint64_t kb = static_cast<uint64_t>(*v);
        if (parts[0] == "MemTotal:")
            m.total_bytes = kb * 1024;
        else if (parts[0] == "MemAvailable:")
            available = kb * 1024;
        else if (parts[0] == "MemFree:")
            free_kb = kb;
        else if (parts[0] == "Buffers:")
            buffers = kb;
        else if (parts[0] == "Cached:")
            cached = kb;
    }
    if (available)
        m.available_bytes = *available;
    else
        m.available_bytes = (free_kb.value_or(0) + buffers.value_or(0) + cached.value_or(0)) * 1024;
    return m;
}

cgroup_limits read_cgroup_limits(const std::filesystem::path& root) {
    cgroup_limits cg;
    // The process's own cgroup path: "0::/some/path" for v2; v1 lines name their controllers.
    std::string v2_path, v1_memory_path, v1_cpu_path;
    if (auto text = read_text(under_root(root, "/proc/self/cgroup"))) {
        for (const auto& line : split(*text, '\n')) {
            auto parts = split(line, ':');
            if (parts.size() < 3) continue;
            std::string path = line.substr(parts[0].size() + parts[1].size() + 2);
            if (parts[0] == "0" && parts[1].empty()) v2_path = path;
            for (const auto& c : split(parts[1], ',')) {
                if (c == "memory") v1_memory_path = path;
                if (c == "cpu") v1_cpu_path = path;
            }
        }
    }
    auto cg_root = under_root(root, "/sys/fs/cgroup");
    // Inside a container the cgroup namespace makes our own cgroup the root, so try the
    // process's path first and the mount root second.
    auto first_existing = [&](const std::filesystem::path& base, const std::string& rel,
                              const std::string& file) -> std::optional<std::string> {
        if (!rel.empty() && rel != "/") {
            if (auto s = read_line(under_root(base, rel) / file)) return s;
        }
        return read_line(base / file);
    };

    if (std::filesystem::exists(cg_root / "cgroup.controllers")) {
        cg.version = 2;
        cg.memory_max_bytes = parse_limit(first_existing(cg_root, v2_path, "memory.max"));
        if (auto cur = first_existing(cg_root, v2_path, "memory.current")) {
            if (auto v = parse_int(*cur); v && *v >= 0)
                cg.memory_current_bytes = static_cast<uint64_t>(*v);
        }
        if (auto cpu = first_existing(cg_root, v2_path, "cpu.max")) {
            auto parts = split_ws(*cpu);
            if (parts.size() == 2 && parts[0] != "max") {
                auto quota = parse_int(parts[0]), period = parse_int(parts[1]);
                if (quota && period && *quota > 0 && *period > 0)
                    cg.cpu_max_cores = static_cast<double>(*quota) / static_cast<double>(*period);
            }
        }
    } else if (std::filesystem::exists(cg_root / "memory") ||
               std::filesystem::exists(cg_root / "cpu")) {
        cg.version = 1;
        cg.memory_max_bytes = parse_limit(
            first_existing(cg_root / "memory", v1_memory_path, "memory.limit_in_bytes"));
        if (auto cur =
                first_existing(cg_root / "memory", v1_memory_path, "memory.usage_in_bytes")) {
            if (auto v = parse_int(*cur); v && *v >= 0)
                cg.memory_current_bytes = static_cast<uint64_t>(*v);
        }
        auto quota = first_existing(cg_root / "cpu", v1_cpu_path, "cpu.cfs_quota_us");
        auto period = first_existing(cg_root / "cpu", v1_cpu_path, "cpu.cfs_period_us");
        if (quota && period) {
            auto q = parse_int(*quota), p = parse_int(*period);
            if (q && p && *q > 0 && *p > 0)
                cg.cpu_max_cores = static_cast<double>(*q) / static_cast<double>(*p);
        }
    }
    return cg;
}

int recommended_threads(const cpu_info& cpu, const cgroup_limits& cg) {
    int n = cpu.n_physical > 0 ? cpu.n_physical : std::max(cpu.n_logical, 1);
    if (cg.cpu_max_cores)
        n = std::min(n, std::max(1, static_cast<int>(std::floor(*cg.cpu_max_cores))));
    return std::max(n, 1);
}

uint64_t usable_memory_bytes(const memory_info& mem, const cgroup_limits& cg) {
    uint64_t usable = mem.available_bytes;
    if (cg.memory_max_bytes) {
        uint64_t used = cg.memory_current_bytes.value_or(0);
        uint64_t room = *cg.memory_max_bytes > used ? *cg.memory_max_bytes - used : 0;
        usable = std::min(usable, room);
    }
    return usable;
}

}  // namespace edgellm::device
