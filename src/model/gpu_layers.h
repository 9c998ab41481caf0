// -ngl: the last layers of the decoder (and the output layer when every layer is offloaded) run
// on a CUDA GPU with the kernels of src/kernels/cuda, as llama.cpp places them: the token
// embeddings and the first layers stay on the CPU, the residual stream is copied to the device
// once per step and the logits come back. Weights of the offloaded layers are copied to device
// memory in the GGUF layout; their KV cache lives there too (one sequence, contiguous rows).
//
// Supported: llama-style decoders without extras (llama, Mistral and others of the llama arch
// without a sliding window), weight types the CUDA mul_mat takes, F16 / F32 KV, one sequence.
// Anything else is refused by create() with the reason; builds without CUDA kernels and
// machines without a device refuse every -ngl > 0 the same way.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace edgellm::model {

class gpu_layers {
public:
    // Offloads the last min(n_gpu_layers, n_layer) layers, plus the output layer when
    // n_gpu_layers > n_layer. Throws usage_error naming what cannot be offloaded (no CUDA in this
    // build, no device, an architecture feature, a weight or KV type, n_seq > 1, not enough
    // device memory).
    static std::unique_ptr<gpu_layers> create(const model& m, int n_gpu_layers, int64_t n_ctx, ggml_type kv_type,
                                              int n_seq, int64_t n_batch);
    virtual ~gpu_layers() = default;

    virtual int first_layer() const = 0;      // layers first_layer() .. n_layer - 1 run here
    virtual bool output_on_gpu() const = 0;
    virtual uint64_t device_bytes() const = 0;  // weights + KV + scratch allocated on the device
    virtual std::string describe() const = 0;   // one line for logs and reports

    // Runs the offloaded layers for n tokens of sequence 0 at positions[0..n) (consecutive):
    // x [n][n_embd] (host) is the residual stream in and out.
    virtual void run(float* x, const int64_t* positions, int64_t n) = 0;
    // Final norm and output projection of n_out rows of x (host) into logits [n_out][n_vocab] (host).
    virtual void output(const float* x, int64_t n_out, float* logits) = 0;
};

// True when this build has the CUDA kernels (EDGELLM_HAVE_CUDA).
bool gpu_layers_built();
// Why no layer can be offloaded on this machine ("this edgellm was built without CUDA kernels
// ...", "no CUDA device found ..."), or "" when a device is there (the model may still be refused
// by create()). One wording for the engine, the native backend and bench.
std::string gpu_offload_unavailable_reason();
// What of this model the GPU layer loop does not implement ("Multi-head Latent Attention ...",
// "per-head Q/K norms" ...), or "" for a llama-style decoder it runs. create() refuses the former
// with this reason; defined in every build, so the refusal is testable without CUDA.
std::string gpu_unsupported_feature(const model& m);

// Device bytes that offloading n_gpu_layers (as create() places them) needs: weights in the GGUF
// layout, the F16/F32 KV cache of n_ctx positions, the output layer when n_gpu_layers > n_layer,
// and one step's activations. create() refuses a placement whose bytes the device lacks; the
// engine's fallback chain uses it to pick fewer layers first. Defined in every build.
uint64_t gpu_layers_device_bytes(const model& m, int n_gpu_layers, int64_t n_ctx, ggml_type kv_type, int64_t n_batch);
// The same from plain numbers (the load plan works on them, engine/load_plan.h): the GGUF-layout
// bytes of each layer's offloaded matrices and of the output matrix, read from the model once.
struct gpu_weight_bytes {
    std::vector<uint64_t> layers;  // [n_layer] attn_q/k/v/output + ffn_gate/up/down
    uint64_t output = 0;
};
gpu_weight_bytes gpu_weight_bytes_of(const model& m);
uint64_t gpu_layers_device_bytes(const model_hparams& hp, const gpu_weight_bytes& w, int n_gpu_layers, int64_t n_ctx,
                                 ggml_type kv_type, int64_t n_batch);
// Free memory of the CUDA device, 0 without one (or without CUDA in this build).
uint64_t gpu_free_memory();

// The "fewer GPU layers" rung: the first of asked, then 3/4, 1/2 and 1/4 of the layers whose
// need(n) bytes fit free_bytes, else 0 (every layer on the CPU). `note` says what was taken
// instead of the request and why (empty when the request fits); `tried` lists the misses.
struct gpu_layer_choice {
    int n_gpu_layers = 0;
    std::vector<std::string> tried;
    std::string note;
};
gpu_layer_choice choose_gpu_layers(int asked, int n_layer, uint64_t free_bytes, const std::function<uint64_t(int)>& need);

}  // namespace edgellm::model
