// Device detection: what this machine (or a fixture tree standing in for one) is, gathered
// into one plain struct: CPU, RAM, cgroup limits, NVIDIA GPUs via NVML, Jetson, Apple Silicon.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "device/cpu_info.h"
#include "device/jetson.h"
#include "device/nvml.h"

namespace edgellm::device {

// The seed's DeviceManager categories.
enum class device_kind { cpu, cuda, jetson, apple_silicon };
std::string_view device_kind_name(device_kind k);  // "cpu", "cuda", "jetson", "apple_silicon"

struct apple_info {
    std::string chip;           // "Apple M2 Pro"
    uint64_t memory_bytes = 0;  // unified memory
    int n_performance_cores = 0;
    int n_efficiency_cores = 0;
};

// Apple Silicon facts from sysctl; nullopt on any other platform (compiled only on macOS).
std::optional<apple_info> detect_apple_silicon();

struct device_info {
    device_kind kind = device_kind::cpu;
    std::string root;  // the tree it was read from ("/" for this machine)
    cpu_info cpu;
    memory_info memory;
    cgroup_limits cgroup;
    std::optional<jetson_info> jetson;
    std::optional<apple_info> apple;
    // NVIDIA GPUs: from NVML on desktops/servers; on a Jetson the integrated GPU, whose memory
    // is the system RAM.
    std::vector<gpu_info> gpus;
    std::string nvidia_driver_version;
    int cuda_driver_version = 0;  // 12040 = CUDA 12.4
    std::string nvml_status;      // "ok", "fixture <file>", or why NVML is unavailable
    bool unified_memory = false;  // CPU and GPU share one pool (Jetson, Apple Silicon)
    // Source of live GPU readings for the monitor; null when there is none.
    std::shared_ptr<const nvml_interface> nvml;

    int recommended_threads() const { return device::recommended_threads(cpu, cgroup); }
    uint64_t usable_ram_bytes() const { return usable_memory_bytes(memory, cgroup); }
    // One line: "Jetson Orin Nano 8GB, 6 cores, 7.4 GiB unified memory, L4T R36.3.0".
    std::string summary() const;
};

struct detect_options {
    std::filesystem::path root = "/";
    // NVML answers. When null: the real NVML for root "/", and for any other root the file
    // <root>/nvml.json when it exists (so a fixture tree carries its GPUs), else no GPU.
    std::shared_ptr<const nvml_interface> nvml;
};

device_info detect_device(const detect_options& opts = {});

}  // namespace edgellm::device
