// CPU, RAM and cgroup facts read from /proc and /sys below a root directory (fixture trees in
// tests, "/" in production).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace edgellm::device {

// ISA features that matter to our kernels (and to llama.cpp-style backends).
struct cpu_features {
    // x86
    bool sse3 = false, ssse3 = false, avx = false, avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512_vnni = false, avx512_bf16 = false, avx_vnni = false, amx = false;
    // Arm
    bool neon = false, dotprod = false, fp16 = false, i8mm = false, sve = false, sve2 = false;

    // Names of the features that are present, in a stable order ("AVX2", "FMA", "NEON" ...).
    std::vector<std::string> names() const;
};

struct cpu_info {
    std::string arch;        // "x86_64" or "aarch64" (from the flags seen), "unknown" otherwise
    std::string vendor;      // "GenuineIntel", "AuthenticAMD", "ARM (0x41)" ...
    std::string model_name;  // "AMD EPYC 7B13", or "Cortex-A78AE" from the Arm part number
    int n_logical = 0;       // processors the OS lists
    int n_physical = 0;      // distinct cores (SMT siblings counted once)
    cpu_features features;
};

struct memory_info {
    uint64_t total_bytes = 0;      // MemTotal
    uint64_t available_bytes = 0;  // MemAvailable (MemFree + reclaimable when the kernel is old)
};

// Limits from the process's cgroup (v2, or v1 as fallback); absent fields mean "unlimited".
struct cgroup_limits {
    int version = 0;  // 0 when no cgroup filesystem was found
    std::optional<uint64_t> memory_max_bytes;
    std::optional<uint64_t> memory_current_bytes;
    std::optional<double> cpu_max_cores;  // quota / period
};

cpu_info read_cpu_info(const std::filesystem::path& root);
memory_info read_memory_info(const std::filesystem::path& root);
cgroup_limits read_cgroup_limits(const std::filesystem::path& root);

// Threads a compute-bound backend should use: physical cores, capped by a cgroup CPU quota.
int recommended_threads(const cpu_info& cpu, const cgroup_limits& cg);
// Memory this process may still take: MemAvailable, capped by the cgroup's remaining room.
uint64_t usable_memory_bytes(const memory_info& mem, const cgroup_limits& cg);

}  // namespace edgellm::device
