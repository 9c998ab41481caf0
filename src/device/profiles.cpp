// Capability table and per-backend settings for a detected device; JSON forms (see profiles.h).
#include "device/profiles.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/units.h"

namespace edgellm::device {
namespace {

bool has_cuda(const device_info& d) {
    return (d.kind == device_kind::cuda || d.kind == device_kind::jetson) && !d.gpus.empty();
}

// Lowest compute capability among the GPUs (what every one of them can do), as 10*major+minor.
int min_cc(const device_info& d) {
    int cc = 0;
    for (const auto& g : d.gpus) {
        int v = g.cc_major * 10 + g.cc_minor;
        cc = cc == 0 ? v : std::min(cc, v);
    }
    return cc;
}

std::string cc_string(int cc) {
    return fmt::format("{}.{}", cc / 10, cc % 10);
}

// Memory a framework may take on a Jetson: the total less the system reserve, in whole GiB.
int jetson_budget_gib(const device_info& d) {
    const uint64_t total = d.memory.total_bytes,
                   reserve = d.jetson ? d.jetson->system_reserve_bytes : 0;
    const uint64_t budget = total > reserve ? total - reserve : 0;
    return static_cast<int>(budget / (1024ull * 1024 * 1024));
}

bool flash_attention_ok(const device_info& d) {
    if (d.kind == device_kind::jetson) return d.jetson->flash_attention_recommended;
    if (d.kind == device_kind::cuda) return min_cc(d) >= 80;
    return true;  // fused CPU / Metal attention
}

}  // namespace

std::vector<capability> capabilities(const device_info& d) {
    std::vector<capability> rows;
    const bool cuda = has_cuda(d);
    const int cc = min_cc(d);
    const auto& f = d.cpu.features;
    const bool apple = d.kind == device_kind::apple_silicon;

    std::string provider = cuda
                               ? "CUDAExecutionProvider"
                               : (apple ? "CoreML/CPU execution provider" : "CPUExecutionProvider");
    rows.push_back({"ONNX", true, "ONNX Runtime with " + provider});
    std::string quant_note =
        cuda ? "GGUF k-quants on CUDA; bitsandbytes/GPTQ/AWQ for Transformers"
             : (apple ? "GGUF k-quants on Metal and CPU"
                      : "GGUF k-quants (Q4_K_M ...) run on the CPU; bitsandbytes needs CUDA");
    if (d.kind == device_kind::jetson)
        quant_note =
            "GGUF k-quants on CUDA (Q4_K_M recommended); bitsandbytes needs a Jetson build";
    rows.push_back({"Quantization", true, quant_note});
    rows.push_back(
        {"MPS", apple,
         apple ? "Metal Performance Shaders (PyTorch device 'mps')" : "Apple Silicon only"});
    rows.push_back({"CUDA", cuda,
                    cuda ? fmt::format("compute capability {}{}", cc_string(cc),
                                       d.cuda_driver_version
                                           ? ", CUDA " + cuda_version_string(d.cuda_driver_version)
                                           : "")
                         : "no NVIDIA GPU (" + d.nvml_status + ")"});
    {
        bool half = apple || (cuda && cc >= 53) || f.fp16 || f.f16c;
        std::string note = cuda     ? "FP16 arithmetic on the GPU"
                           : apple  ? "FP16 on the GPU (Metal)"
                           : f.fp16 ? "FP16 arithmetic on the CPU (Arm asimdhp)"
                           : f.f16c ? "F16 weights converted with F16C; arithmetic in F32"
                                    : "no F16 instructions: F16 weights are converted in software";
        rows.push_back({"Half precision", half, note});
    }
    {
        bool bf16 = (cuda && cc >= 80) || f.avx512_bf16 || f.amx;
        std::string note =
            cuda ? (cc >= 80 ? "BF16 tensor cores (Ampere or newer)"
                             : "needs compute capability 8.0+")
                 : (f.avx512_bf16 || f.amx ? "AVX512_BF16/AMX" : "no BF16 instructions");
        rows.push_back({"BF16", bf16, note});
    }
    {
        bool vnni = f.avx512_vnni || f.avx_vnni;
        bool int8 = (cuda && cc >= 61) || vnni || f.dotprod || f.avx2;
        std::string note =
            cuda   ? (cc >= 61 ? "DP4A int8 dot products" : "no DP4A (compute capability < 6.1)")
            : vnni ? "VNNI int8 dot products"
            : f.dotprod ? "Arm SDOT/UDOT int8 dot products"
            : f.avx2    ? "AVX2 int8 multiply-add (no VNNI)"
                        : "no fast int8 dot product instructions";
        if (cuda && cc >= 72) note += "; INT8 tensor cores";
        rows.push_back({"INT8", int8, note});
    }
    rows.push_back({"Tensor cores", cuda && cc >= 70,
                    cuda ? (cc >= 70 ? "Volta or newer" : "pre-Volta GPU") : "no NVIDIA GPU"});
    {
        bool fa = flash_attention_ok(d);
        std::string note =
            cuda ? (fa ? "fused flash attention (llama.cpp -fa, FlashAttention-2 needs 8.0+)"
                       : "off: the fused kernels need compute capability 8.0+")
                 : "fused attention on the CPU/Metal (llama.cpp -fa)";
        rows.push_back({"Flash attention", fa, note});
    }
    rows.push_back(
        {"Unified memory", d.unified_memory,
         d.unified_memory
             ? "CPU and GPU share RAM: GPU offload costs no extra memory, but both draw on one pool"
             : "separate host and GPU memory"});
    if (d.cpu.arch == "x86_64") {
        rows.push_back({"AVX2 + FMA", f.avx2 && f.fma, f.f16c ? "with F16C" : ""});
        rows.push_back({"AVX-512", f.avx512f && f.avx512bw && f.avx512vl,
                        f.avx512f ? "F/BW/VL/DQ subsets as listed in features" : "not present"});
        rows.push_back(
            {"AVX-VNNI", f.avx_vnni || f.avx512_vnni,
             f.avx512_vnni ? "AVX512_VNNI" : (f.avx_vnni ? "AVX_VNNI (256-bit)" : "not present")});
    } else if (d.cpu.arch == "aarch64" || d.cpu.arch == "arm64") {
        rows.push_back({"NEON", f.neon, "Advanced SIMD"});
        rows.push_back({"Dot product", f.dotprod, "SDOT/UDOT (asimddp)"});
        rows.push_back({"SVE", f.sve, f.sve2 ? "SVE2" : ""});
    }
    return rows;
}

std::vector<backend_settings> recommended_settings(const device_info& d, const memory_plan* plan) {
    std::vector<backend_settings> out;
    const bool cuda = has_cuda(d);
    const bool apple = d.kind == device_kind::apple_silicon;
    const bool jetson = d.kind == device_kind::jetson;
    const int cc = min_cc(d);
    const std::string threads = std::to_string(d.recommended_threads());
    const bool fa = flash_attention_ok(d);

    // llama.cpp-style backends: the seed's batch sizes per device; GPU layers and context come
    // from the memory plan when there is one.
    std::string ngl, ngl_note;
    if (plan) {
        ngl = std::to_string(plan->usage.n_gpu_layers);
    } else if (cuda || apple) {
        ngl = "999";
        ngl_note = "all layers; pass --model to check that they fit";
    } else {
        ngl = "0";
    }
    const std::string batch = (jetson || d.kind == device_kind::cpu) ? "256" : "512";
    const std::string ctx = plan ? std::to_string(plan->usage.n_ctx) : "2048";
    {
        backend_settings b{"llama.cpp", true, {}, {}};
        b.settings = {{"n_gpu_layers", ngl},
                      {"n_threads", threads},
                      {"n_batch", batch},
                      {"n_ctx", ctx},
                      {"flash_attn", fa ? "on" : "off"}};
        b.note = "threads = physical cores";
        if (!ngl_note.empty()) b.note += "; n_gpu_layers: " + ngl_note;
        if (jetson)
            b.note +=
                "; unified memory: offloading every layer costs no extra RAM, keep the system "
                "reserve free";
        if (apple)
            b.note +=
                "; Metal build offloads every layer (the seed's n_gpu_layers=0 is for CPU builds)";
        out.push_back(std::move(b));
    }
    {
        backend_settings b{"transformers", true, {}, {}};
        if (cuda && !jetson) {
            b.settings = {{"device_map", "auto"},
                          {"torch_dtype", cc >= 80 ? "bfloat16" : "float16"},
                          {"load_in_8bit", "false"},
                          {"use_cache", "true"}};
            b.note = "load_in_8bit=True (bitsandbytes) when the FP16 model exceeds GPU memory";
        } else if (jetson) {
            b.settings = {{"device_map", "auto"},
                          {"torch_dtype", "float16"},
                          {"max_memory", fmt::format("{{0: \"{}GiB\"}}", jetson_budget_gib(d))},
                          {"use_cache", "true"}};
            b.note = "max_memory leaves the system reserve; use NVIDIA's JetPack PyTorch wheel";
        } else if (apple) {
            b.settings = {{"device_map", "mps"}, {"torch_dtype", "float16"}, {"use_cache", "true"}};
        } else {
            bool bf16 = d.cpu.features.avx512_bf16 || d.cpu.features.amx;
            b.settings = {{"device_map", "cpu"},
                          {"torch_dtype", bf16 ? "bfloat16" : "float32"},
                          {"use_cache", "true"},
                          {"torch.set_num_threads", threads}};
        }
        out.push_back(std::move(b));
    }
    {
        backend_settings b{"onnxruntime", true, {}, {}};
        b.settings = {{"provider", cuda ? "CUDAExecutionProvider" : "CPUExecutionProvider"},
                      {"graph_optimization_level", "ORT_ENABLE_ALL (99)"},
                      {"intra_op_num_threads", threads}};
        if (cuda) b.note = "TensorrtExecutionProvider first when TensorRT is installed";
        if (jetson) b.note += "; use NVIDIA's JetPack onnxruntime-gpu wheel";
        if (apple) b.note = "CoreMLExecutionProvider where the build includes it";
        out.push_back(std::move(b));
    }
    {
        backend_settings b{"ollama", true, {}, {}};
        b.settings = {
            {"num_gpu", ngl}, {"num_thread", threads}, {"num_ctx", ctx}, {"num_batch", batch}};
        b.note = "request options (or OLLAMA_* env); same meaning as llama.cpp's";
        if (jetson) b.note += "; Ollama's Linux arm64 install supports JetPack 5/6";
        out.push_back(std::move(b));
    }
    {
        backend_settings b{"vllm", cuda && cc >= 70, {}, {}};
        if (b.supported) {
            double util = 0.90;
            if (jetson && d.memory.total_bytes > 0)
                util = std::floor(100.0 * static_cast<double>(jetson_budget_gib(d)) * 1073741824.0 /
                                  static_cast<double>(d.memory.total_bytes)) /
                       100.0;
            b.settings = {{"gpu_memory_utilization", fmt::format("{:.2f}", util)},
                          {"max_model_len", ctx},
                          {"dtype", cc >= 80 ? "bfloat16" : "float16"},
                          {"tensor_parallel_size", std::to_string(jetson ? 1 : d.gpus.size())}};
            b.note = jetson ? "community builds only (jetson-containers); utilisation leaves the "
                              "system reserve"
                            : "serves many requests with paged attention and continuous batching";
        } else {
            b.note = cuda ? "needs compute capability 7.0+"
                          : "needs an NVIDIA GPU; use llama.cpp or ollama here";
        }
        out.push_back(std::move(b));
    }
    return out;
}

nlohmann::json to_json(const device_info& d) {
    nlohmann::json j;
    j["kind"] = std::string(device_kind_name(d.kind));
    j["summary"] = d.summary();
    j["root"] = d.root;
    j["cpu"] = {{"arch", d.cpu.arch},           {"vendor", d.cpu.vendor},
                {"model", d.cpu.model_name},    {"n_physical", d.cpu.n_physical},
                {"n_logical", d.cpu.n_logical}, {"features", d.cpu.features.names()}};
    j["memory"] = {{"total_bytes", d.memory.total_bytes},
                   {"available_bytes", d.memory.available_bytes},
                   {"usable_bytes", d.usable_ram_bytes()}};
    nlohmann::json cg = {{"version", d.cgroup.version}};
    cg["memory_max_bytes"] =
        d.cgroup.memory_max_bytes ? nlohmann::json(*d.cgroup.memory_max_bytes) : nlohmann::json();
    cg["cpu_max_cores"] =
        d.cgroup.cpu_max_cores ? nlohmann::json(*d.cgroup.cpu_max_cores) : nlohmann::json();
    j["cgroup"] = cg;
    j["recommended_threads"] = d.recommended_threads();
    j["unified_memory"] = d.unified_memory;
    if (d.jetson) {
        const auto& t = *d.jetson;
        j["jetson"] = {{"module", t.module_name},
                       {"board_model", t.board_model},
                       {"l4t_release", t.l4t_release},
                       {"gpu", t.gpu_name},
                       {"compute_capability", fmt::format("{}.{}", t.cc_major, t.cc_minor)},
                       {"module_memory_bytes", t.module_memory_bytes},
                       {"system_reserve_bytes", t.system_reserve_bytes},
                       {"power_mode_id",
                        t.power_mode_id ? nlohmann::json(*t.power_mode_id) : nlohmann::json()},
                       {"power_mode", t.power_mode_name}};
    }
    if (d.apple) {
        j["apple"] = {{"chip", d.apple->chip},
                      {"memory_bytes", d.apple->memory_bytes},
                      {"n_performance_cores", d.apple->n_performance_cores},
                      {"n_efficiency_cores", d.apple->n_efficiency_cores}};
    }
    nlohmann::json gpus = nlohmann::json::array();
    for (const auto& g : d.gpus) {
        gpus.push_back({{"index", g.index},
                        {"name", g.name},
                        {"uuid", g.uuid},
                        {"compute_capability", fmt::format("{}.{}", g.cc_major, g.cc_minor)},
                        {"memory_total_bytes", g.memory_total_bytes},
                        {"memory_free_bytes", g.memory_free_bytes}});
    }
    j["gpus"] = gpus;
    j["nvidia_driver_version"] = d.nvidia_driver_version;
    j["cuda_version"] = cuda_version_string(d.cuda_driver_version);
    j["nvml_status"] = d.nvml_status;
    return j;
}

nlohmann::json to_json(const memory_plan& p) {
    const auto& u = p.usage;
    return {{"n_gpu_layers", u.n_gpu_layers},
            {"n_layer", p.n_layer},
            {"n_ctx", u.n_ctx},
            {"requested_ctx", p.requested_ctx},
            {"ctx_reduced", p.ctx_reduced},
            {"unified_memory", p.unified_memory},
            {"gpu",
             {{"weights_bytes", u.gpu_weight_bytes},
              {"kv_bytes", u.gpu_kv_bytes},
              {"scratch_bytes", u.gpu_scratch_bytes},
              {"left_bytes", p.gpu_left_bytes}}},
            {"host",
             {{"weights_bytes", u.host_weight_bytes},
              {"kv_bytes", u.host_kv_bytes},
              {"scratch_bytes", u.host_scratch_bytes},
              {"left_bytes", p.host_left_bytes}}},
            {"explanation", p.explanation}};
}

nlohmann::json to_json(const model_memory_facts& m) {
    return {{"name", m.name},
            {"architecture", m.architecture},
            {"n_layer", m.n_layer},
            {"n_embd", m.n_embd},
            {"n_ff", m.n_ff},
            {"n_head", m.n_head},
            {"n_head_kv", m.n_head_kv},
            {"head_dim_k", m.head_dim_k},
            {"head_dim_v", m.head_dim_v},
            {"n_vocab", m.n_vocab},
            {"n_ctx_train", m.n_ctx_train},
            {"weights_bytes", m.total_weight_bytes()},
            {"layer_weight_bytes", m.layer_weight_bytes},
            {"embedding_bytes", m.embedding_bytes},
            {"output_bytes", m.output_bytes},
            {"kv_bytes_per_token",
             m.kv_bytes_per_token_per_layer() * static_cast<uint64_t>(m.n_layer)}};
}

nlohmann::json to_json(const std::vector<capability>& caps) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& c : caps)
        a.push_back({{"name", c.name}, {"available", c.available}, {"note", c.note}});
    return a;
}

nlohmann::json to_json(const std::vector<backend_settings>& settings) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& b : settings) {
        nlohmann::json s = nlohmann::json::object();
        for (const auto& [k, v] : b.settings) s[k] = v;
        a.push_back({{"backend", b.backend},
                     {"supported", b.supported},
                     {"settings", s},
                     {"note", b.note}});
    }
    return a;
}

}  // namespace edgellm::device
