// NVIDIA Jetson detection: L4T release, board model and memory variant, unified memory, power
// mode (nvpmodel), all read below a root directory.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace edgellm::device {

enum class jetson_module {
    unknown,
    orin_nano_4gb,
    orin_nano_8gb,
    orin_nx_8gb,
    orin_nx_16gb,
    agx_orin_32gb,
    agx_orin_64gb,
    xavier_nx,
    agx_xavier,
    nano,  // the original Jetson Nano / TX1 generation (Maxwell)
    tx2,
};

struct jetson_info {
    jetson_module module = jetson_module::unknown;
    std::string module_name;           // "Jetson Orin Nano 8GB"
    std::string board_model;           // /proc/device-tree/model as written
    std::string l4t_release;           // "R36.3.0" from /etc/nv_tegra_release
    std::string gpu_name;              // "Orin (Ampere, 1024 CUDA cores)"
    int cc_major = 0, cc_minor = 0;    // CUDA compute capability of the integrated GPU
    uint64_t module_memory_bytes = 0;  // nominal module RAM (8 GiB ...), shared by CPU and GPU
    // Memory to leave to the OS, desktop and CPU side of the application; the seed's advice is
    // ~2 GB on an 8 GB Orin Nano.
    uint64_t system_reserve_bytes = 0;
    std::optional<int> power_mode_id;  // current nvpmodel mode
    std::string power_mode_name;       // "15W", "MAXN" ...
    bool flash_attention_recommended = false;
};

// Nullopt when the tree does not look like a Jetson (no nv_tegra_release and no Jetson/Tegra
// device-tree model). `mem_total_bytes` (MemTotal) separates memory variants when the
// device tree does not name the SKU.
std::optional<jetson_info> detect_jetson(const std::filesystem::path& root,
                                         uint64_t mem_total_bytes);

std::string jetson_module_name(jetson_module m);

}  // namespace edgellm::device
