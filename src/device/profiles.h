// What a detected device can do (the seed's optimisation table, refined with facts) and the
// recommended settings per backend, plus JSON forms of device facts and memory plans.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "device/device.h"
#include "device/memory_plan.h"

namespace edgellm::device {

struct capability {
    std::string name;  // "CUDA", "Half precision", "INT8" ...
    bool available = false;
    std::string note;  // why, or which instructions/library provide it
};

// Rows: ONNX, Quantization, MPS, CUDA, Half precision, BF16, INT8, Tensor cores,
// Flash attention, Unified memory, and the CPU SIMD families of this architecture.
std::vector<capability> capabilities(const device_info& dev);

struct backend_settings {
    std::string backend;  // "llama.cpp", "transformers", "onnxruntime", "ollama", "vllm"
    bool supported = true;
    std::vector<std::pair<std::string, std::string>> settings;  // in display order
    std::string note;
};

// The seed's per-device settings refined with facts: threads = physical cores (cgroup-capped),
// GPU layers and context from `plan` when a model was planned.
std::vector<backend_settings> recommended_settings(const device_info& dev,
                                                   const memory_plan* plan = nullptr);

nlohmann::json to_json(const device_info& dev);
nlohmann::json to_json(const memory_plan& plan);
nlohmann::json to_json(const model_memory_facts& facts);
nlohmann::json to_json(const std::vector<capability>& caps);
nlohmann::json to_json(const std::vector<backend_settings>& settings);

}  // namespace edgellm::device
