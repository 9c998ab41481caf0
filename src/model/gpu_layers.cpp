// The GPU part of a forward pass (see gpu_layers.h): device copies of the offloaded layers, their
// KV cache, and the layer loop in CUDA ops, mirroring forward_pass::eval_layer.
#include "model/gpu_layers.h"

#include <fmt/format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/units.h"
#include "quant/ggml_type.h"

#ifdef EDGELLM_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace edgellm::model {

bool gpu_layers_built() {
#ifdef EDGELLM_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

std::string gpu_offload_unavailable_reason() {
#ifdef EDGELLM_HAVE_CUDA
    if (kernels::cuda::available()) return {};
    return "no CUDA device found (no NVIDIA driver or GPU visible to this process), so every layer runs on the CPU; "
           "use -ngl 0";
#else
    return "this edgellm was built without CUDA kernels (configure with -DEDGELLM_CUDA=ON and the CUDA toolkit), so "
           "every layer runs on the CPU; use -ngl 0";
#endif
}

std::string gpu_unsupported_feature(const model& m) {
    const model_hparams& hp = m.hparams();
    if (m.weights().layers.empty()) return {};
    const layer_weights& lw = m.weights().layers.front();
    if (hp.mla.enabled()) return "Multi-head Latent Attention (DeepSeek MLA)";
    if (hp.moe.n_expert > 0) return "Mixture-of-Experts feed-forward layers";
    if (hp.rope_yarn) return "YaRN RoPE scaling";
    if (lw.bq) return "Q/K/V biases";
    if (lw.q_norm) return "per-head Q/K norms";
    if (lw.post_attn_norm || lw.post_ffn_norm) return "post-attention / post-FFN norms";
    if (hp.n_swa > 0) return "sliding-window attention";
    if (hp.attn_softcap > 0 || hp.final_softcap > 0) return "soft-capped scores or logits";
    if (hp.ffn_act != ffn_activation::silu) return "a GELU feed-forward";
    if (hp.embd_scale != 1.0f || hp.prescale_q || hp.attn_scale > 0) return "scaled embeddings or queries";
    return {};
}

gpu_weight_bytes gpu_weight_bytes_of(const model& m) {
    const model_weights& w = m.weights();
    auto matrix_bytes = [](const matrix& mt) { return static_cast<uint64_t>(mt.n_rows) * row_size(mt.type, mt.n_cols); };
    gpu_weight_bytes b;
    b.layers.reserve(w.layers.size());
    for (const layer_weights& lw : w.layers) {
        uint64_t n = 0;
        for (const matrix* mt : {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.ffn_gate, &lw.ffn_up, &lw.ffn_down})
            n += matrix_bytes(*mt);
        b.layers.push_back(n);
    }
    b.output = matrix_bytes(w.output);
    return b;
}

uint64_t gpu_layers_device_bytes(const model_hparams& hp, const gpu_weight_bytes& w, int n_gpu_layers, int64_t n_ctx,
                                 ggml_type kv_type, int64_t n_batch) {
    const int64_t first = hp.n_layer - std::min<int64_t>(std::max(n_gpu_layers, 0), hp.n_layer);
    const bool output = n_gpu_layers > hp.n_layer;
    const uint64_t kv_elem = kv_type == ggml_type::f16 ? 2 : 4;  // the device KV cache is F16 or F32
    uint64_t need = 0;
    for (int64_t il = first; il < hp.n_layer; ++il) {
        if (il < static_cast<int64_t>(w.layers.size())) need += w.layers[static_cast<size_t>(il)];
        need += 2 * static_cast<uint64_t>(n_ctx * hp.kv_dim()) * kv_elem;
    }
    if (output) need += w.output + static_cast<uint64_t>(n_batch * hp.n_vocab) * 4;
    if (first < hp.n_layer || output)  // activations of one step
        need += static_cast<uint64_t>(n_batch) * 4 *
                static_cast<uint64_t>(3 * hp.n_embd + 2 * hp.q_dim() + 2 * hp.kv_dim() + 2 * hp.n_ff);
    return need;
}

uint64_t gpu_layers_device_bytes(const model& m, int n_gpu_layers, int64_t n_ctx, ggml_type kv_type, int64_t n_batch) {
    return gpu_layers_device_bytes(m.hparams(), gpu_weight_bytes_of(m), n_gpu_layers, n_ctx, kv_type, n_batch);
}

gpu_layer_choice choose_gpu_layers(int asked, int n_layer, uint64_t free_bytes, const std::function<uint64_t(int)>& need) {
    gpu_layer_choice c;
    const int start = std::min(asked, n_layer + 1);  // more than n_layer + 1 offloads nothing more
    std::vector<int> rungs = {start};
    for (int quarters : {3, 2, 1}) {
        const int n = std::min(start, n_layer) * quarters / 4;
        if (n > 0 && n < rungs.back()) rungs.push_back(n);
    }
    for (int n : rungs) {
        const uint64_t bytes = need(n);
        if (bytes <= free_bytes) {
            c.n_gpu_layers = n;
            break;
        }
        c.tried.push_back(fmt::format("{} layers: {}", n, format_bytes(bytes)));
    }
    if (c.n_gpu_layers != start)
        c.note = fmt::format("fallback: {} of {} layers on the GPU (asked -ngl {}; {} free on the device; did not fit: {})",
                             std::min(c.n_gpu_layers, n_layer), n_layer, asked, format_bytes(free_bytes),
                             fmt::join(c.tried, ", "));
    return c;
}

uint64_t gpu_free_memory() {
#ifdef EDGELLM_HAVE_CUDA
    return kernels::cuda::available() ? kernels::cuda::free_memory() : 0;
#else
    return 0;
#endif
}

#ifndef EDGELLM_HAVE_CUDA

std::unique_ptr<gpu_layers> gpu_layers::create(const model&, int n_gpu_layers, int64_t, ggml_type, int, int64_t) {
    throw usage_error(fmt::format("-ngl {}: {}", n_gpu_layers, gpu_offload_unavailable_reason()));
}

#else

namespace {
namespace cu = kernels::cuda;

// gpu_unsupported_feature plus the limits of the CUDA kernels.
std::string unsupported_feature(const model& m) {
    if (std::string f = gpu_unsupported_feature(m); !f.empty()) return f;
    const model_hparams& hp = m.hparams();
    if (hp.head_dim > cu::k_attention_max_head_dim) return fmt::format("a head size of {}", hp.head_dim);
    return {};
}

// A device copy of one weight matrix in the GGUF layout (the CPU side may hold a packed copy).
struct device_matrix {
    ggml_type type = ggml_type::f32;
    int64_t n_rows = 0, n_cols = 0;
    cu::device_buffer buf;
};

class cuda_layers final : public gpu_layers {
public:
    cuda_layers(const model& m, int n_gpu_layers, int64_t n_ctx, ggml_type kv_type, int64_t n_batch)
        : m_(m), n_ctx_(n_ctx), kv_type_(kv_type), n_batch_(n_batch) {
        const model_hparams& hp = m.hparams();
        const int n_layer = static_cast<int>(hp.n_layer);
        first_ = n_layer - std::min(n_gpu_layers, n_layer);
        output_ = n_gpu_layers > n_layer;
        plan_and_check_memory();
        const model_weights& w = m.weights();
        for (int il = first_; il < n_layer; ++il) {
            const layer_weights& lw = w.layers[static_cast<size_t>(il)];
            layer L;
            L.attn_norm = upload_vector(lw.attn_norm, hp.n_embd);
            L.ffn_norm = upload_vector(lw.ffn_norm, hp.n_embd);
            L.wq = upload_matrix(lw.wq, layer_name(il, "attn_q.weight"));
            L.wk = upload_matrix(lw.wk, layer_name(il, "attn_k.weight"));
            L.wv = upload_matrix(lw.wv, layer_name(il, "attn_v.weight"));
            L.wo = upload_matrix(lw.wo, layer_name(il, "attn_output.weight"));
            L.gate = upload_matrix(lw.ffn_gate, layer_name(il, "ffn_gate.weight"));
            L.up = upload_matrix(lw.ffn_up, layer_name(il, "ffn_up.weight"));
            L.down = upload_matrix(lw.ffn_down, layer_name(il, "ffn_down.weight"));
            const size_t kv_bytes = static_cast<size_t>(n_ctx_ * hp.kv_dim()) * kv_row_elem_bytes();
            L.k = cu::device_buffer(kv_bytes);
            L.v = cu::device_buffer(kv_bytes);
            bytes_ += 2 * kv_bytes;
            layers_.push_back(std::move(L));
        }
        if (output_) {
            out_norm_ = upload_vector(w.output_norm, hp.n_embd);
            output_w_ = upload_matrix(w.output, hp.tied_embeddings ? "token_embd.weight" : "output.weight");
        }
        if (w.rope_freqs) rope_freqs_ = upload_vector(w.rope_freqs, hp.n_rot / 2);
        // Scratch for one step of n_batch tokens.
        auto scratch = [&](int64_t width) {
            cu::device_buffer b(static_cast<size_t>(n_batch_ * width) * sizeof(float));
            bytes_ += b.size();
            return b;
        };
        x_ = scratch(hp.n_embd);
        xn_ = scratch(hp.n_embd);
        q_ = scratch(hp.q_dim());
        k_ = scratch(hp.kv_dim());
        v_ = scratch(hp.kv_dim());
        attn_ = scratch(hp.q_dim());
        proj_ = scratch(hp.n_embd);
        gate_ = scratch(hp.n_ff);
        up_ = scratch(hp.n_ff);
        if (output_) logits_ = scratch(hp.n_vocab);
        pos_ = cu::device_buffer(static_cast<size_t>(n_batch_) * sizeof(int32_t));
        n_kv_ = cu::device_buffer(static_cast<size_t>(n_batch_) * sizeof(int32_t));
        int8_scratch_ = cu::device_buffer(cu::mul_mat_int8_scratch_bytes(std::max(hp.n_embd, hp.n_ff),
                                                                         cu::k_mul_mat_vec_max_tokens));
        bytes_ += pos_.size() + n_kv_.size() + int8_scratch_.size();
    }

    int first_layer() const override { return first_; }
    bool output_on_gpu() const override { return output_; }
    uint64_t device_bytes() const override { return bytes_; }
    std::string describe() const override {
        const int n_layer = static_cast<int>(m_.hparams().n_layer);
        return fmt::format("gpu: {} of {} layers{} on {} ({} of device memory, KV {})", n_layer - first_, n_layer,
                           output_ ? " and the output layer" : "", cu::device_name(), format_bytes(bytes_),
                           type_name(kv_type_));
    }

    void run(float* x, const int64_t* positions, int64_t n) override {
        const model_hparams& hp = m_.hparams();
        if (n > n_batch_) throw error(fmt::format("gpu layers: step of {} tokens exceeds the batch of {}", n, n_batch_));
        std::vector<int32_t>& pos = host_pos_;
        std::vector<int32_t>& n_kv = host_n_kv_;
        pos.resize(static_cast<size_t>(n));
        n_kv.resize(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t) {
            if (positions[t] < 0 || positions[t] >= n_ctx_)
                throw error(fmt::format("gpu layers: position {} outside the context of {}", positions[t], n_ctx_));
            pos[static_cast<size_t>(t)] = static_cast<int32_t>(positions[t]);
            n_kv[static_cast<size_t>(t)] = static_cast<int32_t>(positions[t] + 1);
        }
        pos_.upload_from(pos.data(), pos.size() * sizeof(int32_t));
        n_kv_.upload_from(n_kv.data(), n_kv.size() * sizeof(int32_t));
        const size_t x_bytes = static_cast<size_t>(n * hp.n_embd) * sizeof(float);
        x_.upload_from(x, x_bytes);
        for (const layer& L : layers_) run_layer(L, n);
        x_.download_to(x, x_bytes);
    }

    void output(const float* x, int64_t n_out, float* logits) override {
        const model_hparams& hp = m_.hparams();
        if (!output_) throw error("gpu layers: the output layer is not on the GPU");
        for (int64_t r0 = 0; r0 < n_out; r0 += n_batch_) {
            const int64_t r = std::min(n_batch_, n_out - r0);
            x_.upload_from(x + r0 * hp.n_embd, static_cast<size_t>(r * hp.n_embd) * sizeof(float));
            cu::rms_norm(x_.as<float>(), out_norm_.as<float>(), xn_.as<float>(), hp.n_embd, r, hp.rms_eps);
            mm(output_w_, xn_.as<float>(), r, logits_.as<float>());
            logits_.download_to(logits + r0 * hp.n_vocab, static_cast<size_t>(r * hp.n_vocab) * sizeof(float));
        }
    }

private:
    struct layer {
        cu::device_buffer attn_norm, ffn_norm;
        device_matrix wq, wk, wv, wo, gate, up, down;
        cu::device_buffer k, v;  // [n_ctx][kv_dim] of kv_type_
    };

    size_t kv_row_elem_bytes() const { return kv_type_ == ggml_type::f16 ? 2 : 4; }

    static std::string layer_name(int il, const char* suffix) { return layer_tensor_name(il, suffix); }

    // Refused before any allocation when the device does not have the bytes this placement needs.
    void plan_and_check_memory() {
        const model_hparams& hp = m_.hparams();
        const int n_gpu = hp.n_layer - first_ + (output_ ? 1 : 0);
        const uint64_t need = gpu_layers_device_bytes(m_, n_gpu, n_ctx_, kv_type_, n_batch_);
        const uint64_t free_bytes = cu::free_memory();
        if (need > free_bytes)
            throw usage_error(fmt::format("-ngl: {} layers{} need {} of GPU memory but {} has {} free; use a smaller -ngl or "
                                          "context (-c)",
                                          hp.n_layer - first_, output_ ? " and the output layer" : "",
                                          format_bytes(need), cu::device_name(), format_bytes(free_bytes)));
    }

    cu::device_buffer upload_vector(const float* v, int64_t n) {
        cu::device_buffer b(static_cast<size_t>(n) * sizeof(float));
        b.upload_from(v, b.size());
        bytes_ += b.size();
        return b;
    }

    // The GGUF-layout bytes of a matrix: its own data unless the CPU side repacked it, else the
    // tensor in the file mapping.
    device_matrix upload_matrix(const matrix& mt, const std::string& name) {
        const void* src = mt.data;
        if (mt.packed) {
            const gguf::tensor_info* t = m_.file().find_tensor(name);
            if (!t || t->type != mt.type) throw error(fmt::format("gpu layers: tensor {} not found in the file", name));
            src = t->data;
        }
        if (!cu::supports(mt.type))
            throw usage_error(fmt::format("-ngl: tensor {} is {}, which the CUDA kernels do not take", name,
                                          type_name(mt.type)));
        device_matrix d;
        d.type = mt.type;
        d.n_rows = mt.n_rows;
        d.n_cols = mt.n_cols;
        d.buf = cu::device_buffer(static_cast<size_t>(mt.n_rows) * row_size(mt.type, mt.n_cols));
        d.buf.upload_from(src, d.buf.size());
        bytes_ += d.buf.size();
        return d;
    }

    // y = w x for n tokens: the int8 (dp4a) path for decode-sized steps of Q4_0 / Q8_0, the
    // dequantizing kernels otherwise.
    void mm(const device_matrix& w, const float* x, int64_t n, float* y) {
        if (n <= cu::k_mul_mat_vec_max_tokens && cu::supports_int8(w.type))
            cu::mul_mat_int8(w.type, w.buf.data(), w.n_rows, w.n_cols, x, n, y, int8_scratch_.data());
        else
            cu::mul_mat(w.type, w.buf.data(), w.n_rows, w.n_cols, x, n, y);
    }

    void run_layer(const layer& L, int64_t n) {
        const model_hparams& hp = m_.hparams();
        float* x = x_.as<float>();
        float* xn = xn_.as<float>();
        float* q = q_.as<float>();
        float* k = k_.as<float>();
        float* v = v_.as<float>();
        float* proj = proj_.as<float>();
        const auto* pos = pos_.as<int32_t>();
        cu::rms_norm(x, L.attn_norm.as<float>(), xn, hp.n_embd, n, hp.rms_eps);
        mm(L.wq, xn, n, q);
        mm(L.wk, xn, n, k);
        mm(L.wv, xn, n, v);
        const float* freqs = rope_freqs_.size() ? rope_freqs_.as<float>() : nullptr;
        cu::rope(q, n, hp.n_head, hp.head_dim, hp.n_rot, pos, hp.rope_freq_base, hp.rope_freq_scale, freqs, hp.rope);
        cu::rope(k, n, hp.n_head_kv, hp.head_dim, hp.n_rot, pos, hp.rope_freq_base, hp.rope_freq_scale, freqs, hp.rope);
        cu::store_kv(k, v, n, hp.kv_dim(), L.k.data(), L.v.data(), kv_type_, pos);
        cu::attention(q, L.k.data(), L.v.data(), kv_type_, hp.n_head, hp.n_head_kv, hp.head_dim, n_kv_.as<int32_t>(), n,
                      1.0f / std::sqrt(static_cast<float>(hp.head_dim)), attn_.as<float>());
        mm(L.wo, attn_.as<float>(), n, proj);
        cu::add(x, proj, n * hp.n_embd);
        cu::rms_norm(x, L.ffn_norm.as<float>(), xn, hp.n_embd, n, hp.rms_eps);
        mm(L.gate, xn, n, gate_.as<float>());
        mm(L.up, xn, n, up_.as<float>());
        cu::swiglu(gate_.as<float>(), up_.as<float>(), gate_.as<float>(), n * hp.n_ff);
        mm(L.down, gate_.as<float>(), n, proj);
        cu::add(x, proj, n * hp.n_embd);
    }

    const model& m_;
    int64_t n_ctx_;
    ggml_type kv_type_;
    int64_t n_batch_;
    int first_ = 0;
    bool output_ = false;
    uint64_t bytes_ = 0;
    std::vector<layer> layers_;
    cu::device_buffer out_norm_, rope_freqs_;
    device_matrix output_w_;
    cu::device_buffer x_, xn_, q_, k_, v_, attn_, proj_, gate_, up_, logits_, pos_, n_kv_, int8_scratch_;
    std::vector<int32_t> host_pos_, host_n_kv_;  // staging for pos_ / n_kv_, kept across steps
};

}  // namespace

std::unique_ptr<gpu_layers> gpu_layers::create(const model& m, int n_gpu_layers, int64_t n_ctx, ggml_type kv_type,
                                               int n_seq, int64_t n_batch) {
    const std::string what = fmt::format("-ngl {}", n_gpu_layers);
    if (const std::string why = gpu_offload_unavailable_reason(); !why.empty()) throw usage_error(what + ": " + why);
    if (m.weights().layers.empty()) throw usage_error(what + ": the model has no layers");
    if (const std::string f = unsupported_feature(m); !f.empty())
        throw usage_error(fmt::format("{}: the GPU layers do not implement {} yet ({} model); use -ngl 0", what, f,
                                      m.hparams().arch));
    if (kv_type != ggml_type::f16 && kv_type != ggml_type::f32)
        throw usage_error(fmt::format("{}: the GPU KV cache is F16 or F32, not {}; use --kv-type f16", what,
                                      type_name(kv_type)));
    if (n_seq != 1)
        throw usage_error(fmt::format("{}: GPU layers hold one sequence's KV cache; {} parallel sequences need -ngl 0",
                                      what, n_seq));
    return std::make_unique<cuda_layers>(m, n_gpu_layers, n_ctx, kv_type, n_batch);
}

#endif  // EDGELLM_HAVE_CUDA

}  // namespace edgellm::model
