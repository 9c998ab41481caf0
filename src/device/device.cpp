// Device detection: gathers CPU, memory, cgroup, Jetson, NVML and Apple facts (see device.h).
#include "device/device.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/units.h"
#include "device/sysfs.h"

namespace edgellm::device {

std::string_view device_kind_name(device_kind k) {
    switch (k) {
        case device_kind::cpu:
            return "cpu";
        case device_kind::cuda:
            return "cuda";
        case device_kind::jetson:
            return "jetson";
        case device_kind::apple_silicon:
            return "apple_silicon";
    }
    return "cpu";
}

std::string device_info::summary() const {
    std::string cores = fmt::format("{} cores / {} threads", cpu.n_physical, cpu.n_logical);
    std::string ram = format_bytes(memory.total_bytes);
    switch (kind) {
        case device_kind::jetson: {
            std::string s = fmt::format("{}, {} {}, {}, {} unified memory", jetson->module_name,
                                        cpu.model_name, cores, jetson->gpu_name, ram);
            if (!jetson->l4t_release.empty()) s += ", L4T " + jetson->l4t_release;
            if (!jetson->power_mode_name.empty()) s += ", power mode " + jetson->power_mode_name;
            return s;
        }
        case device_kind::cuda: {
            std::string s = fmt::format(
                "{} ({}), {}, {} RAM", cpu.model_name, cores,
                gpus.size() == 1 ? gpus[0].name : fmt::format("{} NVIDIA GPUs", gpus.size()), ram);
            if (!nvidia_driver_version.empty()) s += ", driver " + nvidia_driver_version;
            if (cuda_driver_version > 0) s += ", CUDA " + cuda_version_string(cuda_driver_version);
            return s;
        }
        case device_kind::apple_silicon:
            return fmt::format("{} ({}), {} unified memory", apple->chip, cores,
                               format_bytes(apple->memory_bytes));
        case device_kind::cpu:
            break;
    }
    return fmt::format("{} ({}, {}), {} RAM, no GPU",
                       cpu.model_name.empty() ? "unknown CPU" : cpu.model_name, cpu.arch, cores,
                       ram);
}

device_info detect_device(const detect_options& opts) {
    std::error_code ec;
    if (!std::filesystem::is_directory(opts.root, ec))
        throw usage_error("device root '" + opts.root.string() + "' is not a directory");
    device_info d;
    d.root = opts.root.string();
    const bool system_root = opts.root == std::filesystem::path("/");
    d.cpu = read_cpu_info(opts.root);
    d.memory = read_memory_info(opts.root);
    d.cgroup = read_cgroup_limits(opts.root);
    d.jetson = detect_jetson(opts.root, d.memory.total_bytes);
    if (system_root) d.apple = detect_apple_silicon();
    if (d.apple && d.cpu.n_logical == 0) {
        // macOS has no /proc: take the CPU and memory facts from sysctl.
        d.cpu.arch = "arm64";
        d.cpu.vendor = "Apple";
        d.cpu.model_name = d.apple->chip;
        d.cpu.n_physical = d.cpu.n_logical =
            d.apple->n_performance_cores + d.apple->n_efficiency_cores;
        d.cpu.features.neon = d.cpu.features.dotprod = d.cpu.features.fp16 = true;
        d.memory.total_bytes = d.memory.available_bytes = d.apple->memory_bytes;
    }

    std::shared_ptr<const nvml_interface> nvml = opts.nvml;
    if (nvml) {
        d.nvml_status = "provided";
    } else if (system_root) {
        nvml = make_system_nvml();
        d.nvml_status = nvml->available() ? "ok" : nvml->unavailable_reason();
    } else if (auto fixture = opts.root / "nvml.json"; std::filesystem::exists(fixture)) {
        nvml = load_nvml_fixture(fixture);
        d.nvml_status = "fixture " + fixture.string();
    } else {
        d.nvml_status = "no NVML in fixture tree " + d.root;
    }

    if (nvml && nvml->available()) {
        d.nvml = nvml;
        d.nvidia_driver_version = nvml->driver_version();
        d.cuda_driver_version = nvml->cuda_driver_version();
        for (int i = 0; i < nvml->device_count(); ++i) {
            if (auto g = nvml->device(i)) d.gpus.push_back(*g);
        }
    }

    if (d.jetson) {
        d.kind = device_kind::jetson;
        d.unified_memory = true;
        if (d.gpus.empty()) {
            // NVML does not cover the integrated GPU on Jetson: describe it from the module
            // table; its memory is the system RAM.
            gpu_info g;
            g.name = d.jetson->gpu_name;
            g.cc_major = d.jetson->cc_major;
            g.cc_minor = d.jetson->cc_minor;
            g.memory_total_bytes = d.memory.total_bytes;
            g.memory_free_bytes = d.usable_ram_bytes();
            d.gpus.push_back(g);
        }
    } else if (!d.gpus.empty()) {
        d.kind = device_kind::cuda;
    } else if (d.apple) {
        d.kind = device_kind::apple_silicon;
        d.unified_memory = true;
    } else {
        d.kind = device_kind::cpu;
    }
    return d;
}

}  // namespace edgellm::device
