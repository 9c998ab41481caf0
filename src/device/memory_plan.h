// Memory planner: from model facts (per-layer weight bytes, KV geometry) and device facts,
// choose GPU layers and context that fit with a margin, and explain the choice in words.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgellm::device {

struct device_info;

// What a model needs, independent of where it runs. Built from a GGUF file by
// model_facts_from_gguf, or by hand in tests.
struct model_memory_facts {
    std::string name;
    std::string architecture;
    int n_layer = 0;
    int64_t n_embd = 0;
    int64_t n_ff = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim_k = 0;  // per KV head
    int64_t head_dim_v = 0;
    // MLA (deepseek2): one cached row of head_dim_k (kv_lora_rank + rope dims) per token and layer
    // holds the keys and, in its latent part, the values: no V row.
    bool values_in_keys = false;
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    std::vector<uint64_t> layer_weight_bytes;  // [n_layer] bytes of blk.<il>.* tensors
    uint64_t embedding_bytes = 0;              // token_embd: stays in host memory (a row lookup)
    uint64_t output_bytes = 0;          // output + output_norm: on the GPU once every layer is
    uint64_t other_bytes = 0;           // tensors outside the layers (rope tables ...): host
    double kv_bytes_per_element = 2.0;  // F16 cache by default; 1.0625 for Q8_0
    // [n_layer] or empty: the sliding window of each layer in the engine's window-sized KV cache
    // (0: the layer keeps the whole context); such a layer's host KV holds about its window
    // (model::kv_cache::swa_seq_blocks), GPU layers keep the whole context.
    std::vector<int64_t> layer_window;

    uint64_t total_weight_bytes() const;
    // K and V bytes one token takes in one layer.
    uint64_t kv_bytes_per_token_per_layer() const;
    uint64_t kv_bytes(int n_layers, int64_t n_ctx) const;
    // KV bytes of the first n_layers layers in host memory (windowed layers: their window pool).
    uint64_t host_kv_bytes(int n_layers, int64_t n_ctx) const;
};

// Reads a GGUF file (metadata + tensor table) with gguf::file::open. Throws edgellm::error
// naming the missing key when the file lacks what the planner needs.
model_memory_facts model_facts_from_gguf(const std::string& path);

// The memory a plan may use, read from a device (or written by hand in tests).
struct plan_budget {
    bool has_gpu = false;
    bool unified_memory = false;        // GPU and host draw on one pool (host_* fields)
    uint64_t gpu_free_bytes = 0;        // discrete GPU only
    uint64_t host_free_bytes = 0;       // RAM this process may take (cgroup-capped)
    uint64_t system_reserve_bytes = 0;  // left to the OS on unified-memory boards
    uint64_t margin_bytes = 0;          // kept free in each pool beyond the plan's estimate
};

// Budget from detected facts; `memory_cap_bytes` lowers every pool to at most that much.
plan_budget budget_from_device(const device_info& dev,
                               std::optional<uint64_t> memory_cap_bytes = std::nullopt);

struct plan_request {
    int64_t n_ctx = 0;  // 0: model::default_ctx(n_ctx_train)
    int64_t n_batch = 512;
    int64_t min_ctx = 256;      // the planner never shrinks the context below this
    int n_gpu_layers_max = -1;  // -1: as many as fit
};

// Where each byte goes for one choice of (GPU layers, context).
struct memory_usage {
    int n_gpu_layers = 0;
    int64_t n_ctx = 0;
    uint64_t gpu_weight_bytes = 0, gpu_kv_bytes = 0, gpu_scratch_bytes = 0;
    uint64_t host_weight_bytes = 0, host_kv_bytes = 0, host_scratch_bytes = 0;
    uint64_t gpu_total() const { return gpu_weight_bytes + gpu_kv_bytes + gpu_scratch_bytes; }
    uint64_t host_total() const { return host_weight_bytes + host_kv_bytes + host_scratch_bytes; }
};

// Bytes a (GPU layers, context) choice takes, llama.cpp-style: the last n_gpu_layers layers
// and their KV on the GPU, the output head too once every layer is there; the embedding table
// and the remaining layers in host memory; a scratch (compute) buffer on each side in use.
memory_usage estimate_usage(const model_memory_facts& m, int n_gpu_layers, int64_t n_ctx,
                            int64_t n_batch);

// Scratch (activations, attention scores, logits) for one batch, in F32.
uint64_t scratch_bytes(const model_memory_facts& m, int64_t n_ctx, int64_t n_batch);

struct memory_plan {
    memory_usage usage;
    int n_layer = 0;
    int64_t requested_ctx = 0;
    bool ctx_reduced = false;
    uint64_t gpu_left_bytes = 0;   // after the plan and the margin (discrete GPU)
    uint64_t host_left_bytes = 0;  // after the plan and the margin (or the unified pool)
    bool unified_memory = false;
    std::string explanation;  // "22/22 layers on GPU, 1.9 GiB weights + 0.4 GiB KV at ctx 4096, 5.1
                              // GiB left"
};

// Chooses the most GPU layers that fit, then the largest context (halving from the request
// down to min_ctx) at which host and GPU both fit. Throws usage_error with the numbers when the
// model does not fit even on the CPU at min_ctx.
memory_plan plan_memory(const model_memory_facts& m, const plan_budget& budget,
                        const plan_request& req = {});

}  // namespace edgellm::device
