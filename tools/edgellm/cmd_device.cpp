// `edgellm device`: what this machine (or a fixture tree) is, what it can do, the recommended
// settings per backend, and with --model the memory plan and its fallback sequence.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "command.h"
#include "store/store.h"
#include "core/error.h"
#include "core/units.h"
#include "device/device.h"
#include "device/fallback.h"
#include "device/memory_plan.h"
#include "device/profiles.h"

namespace {

using namespace edgellm;
using namespace edgellm::device;

struct device_options {
    std::string root = "/";
    std::string nvml_fixture;
    bool json = false;
    std::string model;
    int64_t n_ctx = 0;
    std::string memory_cap;
};

// "6G", "512M", "123456" -> bytes (binary units).
uint64_t parse_size(const std::string& s) {
    if (s.empty()) throw usage_error("--memory-cap needs a size such as 6G, 512M or 123456");
    size_t used = 0;
    double v = 0;
    try {
        v = std::stod(s, &used);
    } catch (const std::exception&) {
        throw usage_error("--memory-cap: '" + s + "' is not a size (e.g. 6G, 512M, 123456)");
    }
    std::string unit = s.substr(used);
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    double mult = 1;
    if (unit.empty() || unit == "B")
        mult = 1;
    else if (unit == "K" || unit == "KB" || unit == "KIB")
        mult = 1024.0;
    else if (unit == "M" || unit == "MB" || unit == "MIB")
        mult = 1024.0 * 1024;
    else if (unit == "G" || unit == "GB" || unit == "GIB")
        mult = 1024.0 * 1024 * 1024;
    else
        throw usage_error("--memory-cap: unknown unit '" + unit + "' in '" + s +
                          "' (use K, M or G)");
    if (v <= 0) throw usage_error("--memory-cap must be positive");
    return static_cast<uint64_t>(v * mult);
}

void print_text(const device_info& dev, const std::vector<capability>& caps,
                const std::vector<backend_settings>& settings) {
    fmt::print("Device: {} ({})\n", dev.summary(), device_kind_name(dev.kind));
    fmt::print("  CPU: {} {} [{}], {} physical / {} logical cores\n", dev.cpu.vendor,
               dev.cpu.model_name, dev.cpu.arch, dev.cpu.n_physical, dev.cpu.n_logical);
    auto feats = dev.cpu.features.names();
    std::string flist;
    for (const auto& f : feats) flist += (flist.empty() ? "" : " ") + f;
    fmt::print("  CPU features: {}\n", flist.empty() ? "(none detected)" : flist);
    fmt::print("  RAM: {} total, {} available, {} usable by this process\n",
               format_bytes(dev.memory.total_bytes), format_bytes(dev.memory.available_bytes),
               format_bytes(dev.usable_ram_bytes()));
    if (dev.cgroup.version > 0) {
        fmt::print(
            "  cgroup v{}: memory {}, CPU {}\n", dev.cgroup.version,
            dev.cgroup.memory_max_bytes ? format_bytes(*dev.cgroup.memory_max_bytes) : "unlimited",
            dev.cgroup.cpu_max_cores ? fmt::format("{:.2f} cores", *dev.cgroup.cpu_max_cores)
                                     : "unlimited");
    }
    if (dev.jetson) {
        const auto& j = *dev.jetson;
        fmt::print("  Jetson: {} (board '{}'), L4T {}, power mode {}, system reserve {}\n",
                   j.module_name, j.board_model, j.l4t_release.empty() ? "unknown" : j.l4t_release,
                   j.power_mode_name.empty()
                       ? (j.power_mode_id ? std::to_string(*j.power_mode_id) : "unknown")
                       : j.power_mode_name,
                   format_bytes(j.system_reserve_bytes));
    }
    for (const auto& g : dev.gpus) {
        fmt::print("  GPU {}: {}, compute capability {}.{}, {} total, {} free{}\n", g.index, g.name,
                   g.cc_major, g.cc_minor, format_bytes(g.memory_total_bytes),
                   format_bytes(g.memory_free_bytes),
                   dev.unified_memory ? " (shared with the CPU)" : "");
    }
    if (!dev.nvidia_driver_version.empty())
        fmt::print("  NVIDIA driver {}, CUDA {}\n", dev.nvidia_driver_version,
                   cuda_version_string(dev.cuda_driver_version));
    if (dev.gpus.empty()) fmt::print("  NVML: {}\n", dev.nvml_status);

    fmt::print("\nOptimisations:\n");
    size_t w = 0;
    for (const auto& c : caps) w = std::max(w, c.name.size());
    for (const auto& c : caps)
        fmt::print("  {:<{}}  {}  {}\n", c.name, w, c.available ? "yes" : "no ", c.note);

    fmt::print("\nRecommended settings:\n");
    for (const auto& b : settings) {
        std::string s;
        for (const auto& [k, v] : b.settings)
            s += fmt::format("{}{}={}", s.empty() ? "" : ", ", k, v);
        fmt::print("  {:<13} {}{}\n", b.backend, b.supported ? s : "not supported here",
                   b.note.empty() ? "" : "\n                (" + b.note + ")");
    }
}

void run_device(const device_options& o) {
    detect_options d;
    d.root = o.root;
    if (!o.nvml_fixture.empty()) d.nvml = load_nvml_fixture(o.nvml_fixture);
    device_info dev = detect_device(d);
    std::optional<uint64_t> cap;
    if (!o.memory_cap.empty()) cap = parse_size(o.memory_cap);

    std::optional<model_memory_facts> facts;
    std::optional<memory_plan> plan;
    std::optional<fallback_report> fallback;
    std::string plan_error;
    if (!o.model.empty()) {
        facts = model_facts_from_gguf(store::resolve_model(o.model));
        plan_budget budget = budget_from_device(dev, cap);
        plan_request req;
        req.n_ctx = o.n_ctx;
        try {
            plan = plan_memory(*facts, budget, req);
        } catch (const usage_error& e) {
            plan_error = e.what();
        }
        if (cap) {
            // Exercise the loader's fallback against pools capped at --memory-cap, as a real
            // load would meet allocation failures.
            memory_pool gpu("GPU memory", cap);
            memory_pool host(dev.unified_memory ? "unified memory" : "host RAM", cap);
            fallback_options fo;
            fo.n_layer = facts->n_layer;
            fo.n_ctx =
                req.n_ctx > 0
                    ? req.n_ctx
                    : (facts->n_ctx_train > 0 ? std::min<int64_t>(facts->n_ctx_train, 4096) : 4096);
            fo.has_gpu = budget.has_gpu;
            try {
                fallback = load_with_fallback(fo, [&](const load_choice& c) {
                    auto held = simulate_load(*facts, c, req.n_batch,
                                              budget.unified_memory ? host : gpu, host);
                });
            } catch (const usage_error& e) {
                if (plan_error.empty())
                    plan_error = e.what();
                else
                    plan_error += std::string("\n") + e.what();
            }
        }
    }

    auto caps = capabilities(dev);
    auto settings = recommended_settings(dev, plan ? &*plan : nullptr);
    if (o.json) {
        nlohmann::json j;
        j["device"] = to_json(dev);
        j["capabilities"] = to_json(caps);
        j["recommended_settings"] = to_json(settings);
        if (facts) j["model"] = to_json(*facts);
        if (plan) j["plan"] = to_json(*plan);
        if (cap) j["memory_cap_bytes"] = *cap;
        if (fallback) {
            nlohmann::json attempts = nlohmann::json::array();
            for (const auto& a : fallback->attempts)
                attempts.push_back({{"stage", a.stage},
                                    {"n_gpu_layers", a.choice.n_gpu_layers},
                                    {"n_ctx", a.choice.n_ctx},
                                    {"ok", a.ok},
                                    {"failure", a.failure}});
            j["fallback"] = {{"attempts", attempts},
                             {"final",
                              {{"n_gpu_layers", fallback->final_choice.n_gpu_layers},
                               {"n_ctx", fallback->final_choice.n_ctx}}}};
        }
        if (!plan_error.empty()) j["error"] = plan_error;
        fmt::print("{}\n", j.dump(2));
    } else {
        print_text(dev, caps, settings);
        if (facts) {
            fmt::print("\nModel: {} ({}, {} layers, {} weights, KV {} per token at F16)\n",
                       facts->name, facts->architecture, facts->n_layer,
                       format_bytes(facts->total_weight_bytes()),
                       format_bytes(facts->kv_bytes_per_token_per_layer() *
                                    static_cast<uint64_t>(facts->n_layer)));
            if (plan) fmt::print("Plan: {}\n", plan->explanation);
            if (fallback) {
                fmt::print("Fallback with every memory pool capped at {}:\n", format_bytes(*cap));
                std::string s = fallback->summary(facts->n_layer);
                size_t start = 0;
                while (start <= s.size()) {
                    size_t nl = s.find('\n', start);
                    if (nl == std::string::npos) nl = s.size();
                    fmt::print("  {}\n", s.substr(start, nl - start));
                    start = nl + 1;
                }
            }
        }
        if (!plan_error.empty()) std::fprintf(stderr, "error: %s\n", plan_error.c_str());
    }
    if (!plan_error.empty()) cli::exit_code() = 1;
}

}  // namespace

EDGELLM_REGISTER_COMMAND("device", 20, [](CLI::App& app) {
    auto opts = std::make_shared<device_options>();
    auto* cmd = app.add_subcommand(
        "device", "Detect the device, its optimisations and recommended backend settings");
    cmd->footer(
        "Examples:\n"
        "  edgellm device\n"
        "  edgellm device --json\n"
        "  edgellm device --model model.gguf --ctx 4096\n"
        "  edgellm device --root tests/fixtures/devices/orin-nano-8gb --model model.gguf\n"
        "  edgellm device --model model.gguf --memory-cap 512M   # show the fallback sequence");
    cmd->add_option("--root", opts->root,
                    "Read /proc, /sys and /etc below DIR (a fixture tree) instead of /");
    cmd->add_option("--nvml-fixture", opts->nvml_fixture,
                    "Answer NVML queries from this JSON file");
    cmd->add_flag("--json", opts->json, "Machine-readable output");
    cmd->add_option("-m,--model", opts->model, "GGUF model to plan GPU layers and context for");
    cmd->add_option("-c,--ctx", opts->n_ctx,
                    "Requested context length (default: min(trained, 4096))");
    cmd->add_option(
        "--memory-cap", opts->memory_cap,
        "Cap every memory pool at SIZE (e.g. 6G) and run the loader's fallback sequence");
    cmd->callback([opts] { run_device(*opts); });
});
