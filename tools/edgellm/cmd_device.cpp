// `edgellm device`: what this machine (or a fixture tree) is, what it can do, the recommended
// settings per backend, and with --model the memory plan and its fallback sequence.
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "command.h"
#include "common_flags.h"
#include "core/error.h"
#include "core/units.h"
#include "device/device.h"
#include "device/memory_plan.h"
#include "device/profiles.h"
#include "engine/load_plan.h"
#include "model/model.h"
#include "store/store.h"

namespace {

using namespace edgellm;
using namespace edgellm::device;

struct device_options {
    std::string root = "/";
    std::string nvml_fixture;
    bool json = false;
    std::string model;
    // The session settings of `run`/`serve` the loader plan is made for (-c --kv-type -ngl -b
    // --memory-limit --no-fallback), validated and defaulted by the same code as theirs.
    cli::session_flags session;
};

// The loader's answer for the model: engine::plan_load on the opened file (no repacking), with
// this machine's memory as the loader reads it, or a fixture's facts under --root/--nvml-fixture.
struct loader_answer {
    engine::engine_params params;
    engine::load_plan_memory memory;
    std::optional<engine::load_plan> plan;
    std::string unavailable;  // the native engine cannot open the file (another backend may run it)
};

loader_answer plan_loader(const device_options& o, const device_info& dev, const engine::engine_params& ep,
                          const std::string& path) {
    loader_answer a;
    a.params = ep;
    a.params.model_path = path;
    const bool this_machine = o.root == "/" && o.nvml_fixture.empty();
    std::unique_ptr<model::model> m;
    try {
        m = model::model::load(path);
    } catch (const error& e) {
        a.unavailable = e.what();
        return a;
    }
    if (this_machine) {
        a.memory = engine::available_memory(a.params, /*weights_resident=*/false);
    } else {  // the fixture's device, as available_memory reads this one
        if (a.params.memory_budget_bytes == 0) a.memory.ram_available_bytes = dev.usable_ram_bytes();
        if (a.params.n_gpu_layers > 0) {
            if (dev.gpus.empty())
                a.memory.gpu_unavailable_reason = "the device has no NVIDIA GPU (" + dev.nvml_status + "); use -ngl 0";
            else if (a.params.fallback)
                a.memory.gpu_free_bytes = dev.gpus.front().memory_free_bytes;
        }
    }
    engine::load_plan plan;
    try {
        engine::check_engine_params(a.params, /*check_gpu=*/this_machine);
        plan = engine::plan_load(a.params, engine::load_plan_model_of(*m), a.memory);
    } catch (const usage_error& e) {
        plan.error = e.what();
    }
    a.plan = plan;
    return a;
}

nlohmann::json to_json(const loader_answer& a) {
    if (!a.plan) return {{"unavailable", a.unavailable}};
    const engine::load_plan& p = *a.plan;
    nlohmann::json j = {{"n_ctx", p.n_ctx},
                        {"kv_type", std::string(type_name(p.kv_type))},
                        {"n_gpu_layers", p.n_gpu_layers},
                        {"n_batch", p.n_batch},
                        {"asked", {{"n_ctx", p.asked_ctx},
                                   {"kv_type", std::string(type_name(p.asked_kv_type))},
                                   {"n_gpu_layers", p.asked_gpu_layers}}},
                        {"fallback_enabled", a.params.fallback},
                        {"budget_bytes", p.budget_bytes},
                        {"explicit_budget", p.explicit_budget},
                        {"weights_bytes", p.weights_bytes},
                        {"kv_bytes", p.kv_bytes},
                        {"gpu_bytes", p.gpu_bytes},
                        {"gpu_free_bytes", a.memory.gpu_free_bytes},
                        {"rung", p.rung},
                        {"tried", p.tried},
                        {"gpu_tried", p.gpu_tried},
                        {"fallback", p.note}};
    if (!p.ok()) j["error"] = p.error;
    return j;
}

void print_loader(const loader_answer& a) {
    if (!a.plan) {
        fmt::print("Loader plan: the native engine cannot open this model: {}\n", a.unavailable);
        return;
    }
    const engine::load_plan& p = *a.plan;
    std::string kv(type_name(p.asked_kv_type));
    for (char& c : kv) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));  // as --kv-type spells it
    fmt::print("Loader plan (what `edgellm run`/`serve` do with -c {} --kv-type {} -ngl {}{}):\n", p.asked_ctx, kv,
               p.asked_gpu_layers, a.params.fallback ? "" : " --no-fallback");
    const std::string budget =
        p.budget_bytes == 0 ? std::string("unknown (not checked)")
                            : fmt::format("{} ({})", format_bytes(p.budget_bytes),
                                          p.explicit_budget ? "--memory-limit" : "available now");
    if (!p.ok()) {
        fmt::print("  refused: {}\n", p.error);
        return;
    }
    fmt::print("  context {}, {} KV cache, {} GPU layers, batch {} ({})\n", p.n_ctx, type_name(p.kv_type),
               p.n_gpu_layers, p.n_batch, p.rung);
    fmt::print("  weights {} + KV cache {}, budget {}\n", format_bytes(p.weights_bytes), format_bytes(p.kv_bytes),
               budget);
    if (p.n_gpu_layers > 0) fmt::print("  GPU: {} of the device's memory\n", format_bytes(p.gpu_bytes));
    if (!p.note.empty()) fmt::print("  {}\n", p.note);
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
    const engine::engine_params ep = o.session.params();  // usage_error for a bad flag, as `run`
    std::optional<uint64_t> cap;
    if (ep.memory_budget_bytes) cap = ep.memory_budget_bytes;

    std::optional<model_memory_facts> facts;
    std::optional<memory_plan> plan;
    std::optional<loader_answer> loader;
    std::string plan_error, backend_plan_error;
    if (!o.model.empty()) {
        const std::string path = store::resolve_model(o.model);
        facts = model_facts_from_gguf(path);
        plan_budget budget = budget_from_device(dev, cap);
        plan_request req;
        req.n_ctx = ep.n_ctx;
        try {
            plan = plan_memory(*facts, budget, req);
        } catch (const usage_error& e) {
            backend_plan_error = e.what();
        }
        loader = plan_loader(o, dev, ep, path);
        // The error (exit 1): edgellm's loader refuses, or, for a file it cannot open, the
        // llama.cpp-style plan finds no fit.
        if (loader->plan && !loader->plan->ok())
            plan_error = loader->plan->error;
        else if (!loader->plan)
            plan_error = backend_plan_error;
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
        if (!backend_plan_error.empty()) j["plan_error"] = backend_plan_error;
        if (cap) j["memory_cap_bytes"] = *cap;
        if (loader) j["load_plan"] = to_json(*loader);
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
            if (plan) fmt::print("Plan (llama.cpp-style backends): {}\n", plan->explanation);
            if (!backend_plan_error.empty() && loader && loader->plan)
                fmt::print("Plan (llama.cpp-style backends): {}\n", backend_plan_error);
            if (loader) print_loader(*loader);
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
        "  edgellm device --model model.gguf --memory-limit 512M   # the loader's fallback rung");
    cmd->add_option("--root", opts->root,
                    "Read /proc, /sys and /etc below DIR (a fixture tree) instead of /");
    cmd->add_option("--nvml-fixture", opts->nvml_fixture,
                    "Answer NVML queries from this JSON file");
    cmd->add_flag("--json", opts->json, "Machine-readable output");
    cmd->add_option("-m,--model", opts->model, "GGUF model to plan GPU layers and context for");
    cli::session_flags& sf = opts->session;
    cmd->add_option("-c,--ctx,--ctx-size", sf.n_ctx, "Requested context length (default: min(trained, 4096))");
    cmd->add_option("--kv-type,--cache-type-k,--ctk", sf.kv_type, "KV cache type the loader plan starts from (as `run`)");
    cmd->add_option("--ngl,--n-gpu-layers,--gpu-layers", sf.n_gpu_layers, "GPU layers the loader plan starts from (as `run`)");
    cmd->add_option("-b,--batch-size", sf.n_batch, "tokens per forward pass (as `run`; sizes the GPU layers' activations)");
    cmd->add_option("--memory-limit,--memory-cap", sf.memory_limit,
                    "memory the weights + KV cache may take (e.g. 6G), as `run --memory-limit`; also caps every "
                    "memory pool of the llama.cpp-style plan");
    cmd->add_flag("--no-fallback", sf.no_fallback, "plan as `run --no-fallback`: refuse instead of falling back");
    cmd->callback([opts] { run_device(*opts); });
});
