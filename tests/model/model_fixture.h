// Builds small random llama/qwen2/qwen3 GGUF models for model and engine tests, with knobs to
// drop or mis-shape a tensor.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/quant.h"

namespace edgellm::test {

struct tiny_model_spec {
    std::string arch = "llama";
    int64_t n_layer = 2;
    int64_t n_embd = 64;
    int64_t n_head = 4;
    int64_t n_head_kv = 2;
    int64_t n_ff = 96;
    int64_t n_vocab = 67;  // odd on purpose
    int64_t n_ctx_train = 128;
    ggml_type weight_type = ggml_type::f32;
    bool tied = false;
    std::set<std::string> drop;               // tensor names to leave out
    std::string bad_shape;                    // tensor whose row length gets one extra block
    uint32_t seed = 7;
    std::vector<std::pair<std::string, gguf::value>> extra_kv;  // added (or replacing) metadata
    bool rope_freqs = false;                  // add a Llama 3.1-style rope_freqs.weight
};

inline void write_tiny_model(const tiny_model_spec& s, const std::filesystem::path& path) {
    gguf::writer w;
    const std::string a = s.arch;
    w.set("general.architecture", gguf::value::make_string(a));
    w.set("general.name", gguf::value::make_string("tiny-" + a));
    w.set(a + ".block_count", gguf::value::make_u32(static_cast<uint32_t>(s.n_layer)));
    w.set(a + ".embedding_length", gguf::value::make_u32(static_cast<uint32_t>(s.n_embd)));
    w.set(a + ".attention.head_count", gguf::value::make_u32(static_cast<uint32_t>(s.n_head)));
    w.set(a + ".attention.head_count_kv", gguf::value::make_u32(static_cast<uint32_t>(s.n_head_kv)));
    w.set(a + ".feed_forward_length", gguf::value::make_u32(static_cast<uint32_t>(s.n_ff)));
    w.set(a + ".context_length", gguf::value::make_u32(static_cast<uint32_t>(s.n_ctx_train)));
    w.set(a + ".attention.layer_norm_rms_epsilon", gguf::value::make_f32(1e-5f));
    w.set(a + ".rope.freq_base", gguf::value::make_f32(10000.0f));
    w.set("tokenizer.ggml.bos_token_id", gguf::value::make_u32(1));
    w.set("tokenizer.ggml.eos_token_id", gguf::value::make_u32(2));

    for (const auto& [key, value] : s.extra_kv) w.set(key, value);

    std::mt19937 rng(s.seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t head_dim = s.n_embd / s.n_head;
    auto add = [&](const std::string& name, int64_t ne0, int64_t ne1, bool is_matrix, float scale, float offset) {
        if (s.drop.count(name)) return;
        if (name == s.bad_shape) ne0 += is_matrix ? type_traits(s.weight_type).block_size : 1;
        std::vector<float> v(static_cast<size_t>(ne0 * ne1));
        for (float& x : v) x = offset + scale * nd(rng);
        const ggml_type t = is_matrix ? s.weight_type : ggml_type::f32;
        std::vector<uint8_t> bytes(row_size(t, ne0) * static_cast<size_t>(ne1));
        for (int64_t r = 0; r < ne1; ++r)
            quantize_row(t, &v[static_cast<size_t>(r * ne0)], bytes.data() + row_size(t, ne0) * static_cast<size_t>(r),
                         ne0);
        std::vector<int64_t> ne = is_matrix ? std::vector<int64_t>{ne0, ne1} : std::vector<int64_t>{ne0};
        w.add_tensor(name, t, ne, bytes.data(), bytes.size());
    };
    const float ws = 1.0f / std::sqrt(static_cast<float>(s.n_embd));
    add("token_embd.weight", s.n_embd, s.n_vocab, true, 1.0f, 0.0f);
    add("output_norm.weight", s.n_embd, 1, false, 0.1f, 1.0f);
    if (!s.tied) add("output.weight", s.n_embd, s.n_vocab, true, ws, 0.0f);
    if (s.rope_freqs) add("rope_freqs.weight", head_dim / 2, 1, false, 0.5f, 2.0f);
    for (int il = 0; il < s.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        add(p + "attn_norm.weight", s.n_embd, 1, false, 0.1f, 1.0f);
        add(p + "attn_q.weight", s.n_embd, s.n_head * head_dim, true, ws, 0.0f);
        add(p + "attn_k.weight", s.n_embd, s.n_head_kv * head_dim, true, ws, 0.0f);
        add(p + "attn_v.weight", s.n_embd, s.n_head_kv * head_dim, true, ws, 0.0f);
        add(p + "attn_output.weight", s.n_head * head_dim, s.n_embd, true, ws, 0.0f);
        if (a == "qwen2") {
            add(p + "attn_q.bias", s.n_head * head_dim, 1, false, 0.1f, 0.0f);
            add(p + "attn_k.bias", s.n_head_kv * head_dim, 1, false, 0.1f, 0.0f);
            add(p + "attn_v.bias", s.n_head_kv * head_dim, 1, false, 0.1f, 0.0f);
        }
        if (a == "qwen3") {
            add(p + "attn_q_norm.weight", head_dim, 1, false, 0.1f, 1.0f);
            add(p + "attn_k_norm.weight", head_dim, 1, false, 0.1f, 1.0f);
        }
        add(p + "ffn_norm.weight", s.n_embd, 1, false, 0.1f, 1.0f);
        add(p + "ffn_gate.weight", s.n_embd, s.n_ff, true, ws, 0.0f);
        add(p + "ffn_up.weight", s.n_embd, s.n_ff, true, ws, 0.0f);
        add(p + "ffn_down.weight", s.n_ff, s.n_embd, true, 1.0f / std::sqrt(static_cast<float>(s.n_ff)), 0.0f);
    }
    w.write(path.string());
}

}  // namespace edgellm::test
