// Architecture "deepseek2": DeepSeek-V2 / V2-Lite / V2.5 / V3 — Multi-head Latent Attention (a
// low-rank latent KV with a decoupled RoPE key shared by the heads, optional low-rank Q) and a
// Mixture-of-Experts FFN after `leading_dense_block_count` dense layers (softmax or sigmoid router,
// optional selection bias and group-limited routing, shared experts). Normal (GPT-J) RoPE on the
// rope dims only, with YaRN scaling and llama.cpp's deepseek2 attention-scale adjustment.
// Both attention layouts llama.cpp loads are read: attn_k_b / attn_v_b with the *_length_mla keys
// (what convert_hf_to_gguf.py writes today) and the older single attn_kv_b.
#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "model/arch.h"

namespace edgellm::model {
namespace {

int64_t required_count(const gguf::file& f, const std::string& arch, const char* key, int64_t min_value) {
    const std::string full = arch + "." + key;
    const auto v = f.get_u64_opt(full);
    if (!v) throw error(fmt::format("model metadata is missing '{}'", full));
    if (*v < static_cast<uint64_t>(min_value) || *v > (uint64_t{1} << 31))
        throw error(fmt::format("model metadata '{}' = {} is out of range", full, *v));
    return static_cast<int64_t>(*v);
}

int64_t optional_count(const gguf::file& f, const std::string& arch, const char* key) {
    const std::string full = arch + "." + key;
    const auto v = f.get_u64_opt(full);
    if (v && *v > (uint64_t{1} << 31)) throw error(fmt::format("model metadata '{}' = {} is out of range", full, *v));
    return v ? static_cast<int64_t>(*v) : 0;
}

void refuse_key(const gguf::file& f, const std::string& arch, const char* key, const char* what) {
    if (f.has(arch + "." + key))
        throw error(fmt::format("deepseek2 model metadata '{}.{}' ({}) is not supported yet", arch, key, what));
}

void read_mla(const gguf::file& f, model_hparams& hp) {
    const std::string& arch = hp.arch;
    mla_hparams& a = hp.mla;
    a.kv_lora_rank = required_count(f, arch, "attention.kv_lora_rank", 1);
    a.q_lora_rank = optional_count(f, arch, "attention.q_lora_rank");
    if (!f.has(arch + ".rope.dimension_count"))
        throw error(fmt::format("model metadata is missing '{}.rope.dimension_count' (the per-head RoPE dims)", arch));
    a.qk_rope = hp.n_rot;
    const bool has_k_mla = f.has(arch + ".attention.key_length_mla");
    if (has_k_mla != f.has(arch + ".attention.value_length_mla"))
        throw error(fmt::format("model metadata has only one of '{0}.attention.key_length_mla' and "
                                "'{0}.attention.value_length_mla'",
                                arch));
    int64_t k_head = hp.head_dim, v_head = hp.head_dim_v;
    if (has_k_mla) {
        // The MQA view of the split layout: key_length / value_length describe the cached latent rows.
        k_head = required_count(f, arch, "attention.key_length_mla", 1);
        v_head = required_count(f, arch, "attention.value_length_mla", 1);
        if (hp.head_dim != a.kv_lora_rank + a.qk_rope || hp.head_dim_v != a.kv_lora_rank)
            throw error(fmt::format("model metadata: attention.key_length {} / value_length {} should be kv_lora_rank + "
                                    "rope dims = {} / kv_lora_rank = {} when key_length_mla is present",
                                    hp.head_dim, hp.head_dim_v, a.kv_lora_rank + a.qk_rope, a.kv_lora_rank));
    }
    if (k_head <= a.qk_rope)
        throw error(fmt::format("model metadata: the key head size {} must exceed rope.dimension_count {}", k_head,
                                a.qk_rope));
    a.qk_nope = k_head - a.qk_rope;
    a.v_head = v_head;

    // The attention runs as multi-query attention over the cached latent rows (see mla_hparams).
    hp.n_head_kv = 1;
    hp.head_dim = a.kv_lora_rank + a.qk_rope;
    hp.head_dim_v = hp.head_dim;
}

// llama.cpp's deepseek2 scales (llama-context.cpp and models/deepseek2.cpp): with YaRN, the rotation's
// cos / sin carry attn_factor * (1 + 0.1 ln s), where attn_factor is rope.scaling.attn_factor, divided
// by (1 + 0.1 ln s) when rope.scaling.yarn_log_multiplier is set; the attention scale is
// mscale^2 / sqrt(k_head) with mscale = attn_factor * (1 + 0.1 ln s) * (1 + 0.1 m ln s), m being
// mscale_all_dim (the converter stores 0.1 m).
void set_rope_scales(const gguf::file& f, model_hparams& hp) {
    const std::string& arch = hp.arch;
    refuse_key(f, arch, "rope.scaling.yarn_ext_factor", "YaRN ext factor override");
    refuse_key(f, arch, "rope.scaling.yarn_attn_factor", "YaRN attention factor override");
    refuse_key(f, arch, "rope.scaling.yarn_beta_fast", "YaRN beta override");
    refuse_key(f, arch, "rope.scaling.yarn_beta_slow", "YaRN beta override");
    if (!hp.rope_yarn && hp.rope_freq_scale != 1.0f)
        throw error("deepseek2 with linear rope scaling is not supported (supported: none, yarn)");
    const double attn_factor = optional_positive_f32(f, arch, "rope.scaling.attn_factor", 1.0f);
    const double log_mul = f.get_f64_opt(arch + ".rope.scaling.yarn_log_multiplier").value_or(0.0) / 0.1;
    const double ln_s = std::log(1.0 / static_cast<double>(hp.rope_freq_scale));
    double rope_attn = attn_factor;
    if (hp.rope_yarn && log_mul != 0.0) rope_attn /= 1.0 + 0.1 * ln_s;
    hp.mla.rope_mscale = static_cast<float>(hp.rope_yarn ? rope_attn * (1.0 + 0.1 * ln_s) : rope_attn);
    const double mscale = rope_attn * (1.0 + 0.1 * ln_s) * (1.0 + 0.1 * log_mul * ln_s);
    hp.attn_scale = static_cast<float>(mscale * mscale / std::sqrt(static_cast<double>(hp.mla.k_head())));
}

void read_moe(const gguf::file& f, model_hparams& hp) {
    const std::string& arch = hp.arch;
    moe_hparams& e = hp.moe;
    e.n_dense_lead = optional_count(f, arch, "leading_dense_block_count");
    if (e.n_dense_lead >= hp.n_layer) return;  // no MoE layer
    e.n_expert = required_count(f, arch, "expert_count", 1);
    e.n_expert_used = required_count(f, arch, "expert_used_count", 1);
    if (e.n_expert_used > e.n_expert)
        throw error(fmt::format("model metadata: expert_used_count {} exceeds expert_count {}", e.n_expert_used,
                                e.n_expert));
    e.n_ff_exp = required_count(f, arch, "expert_feed_forward_length", 1);
    e.n_expert_shared = required_count(f, arch, "expert_shared_count", 0);
    e.weights_scale = static_cast<float>(f.get_f64_opt(arch + ".expert_weights_scale").value_or(0.0));
    e.weights_norm = f.get_bool_opt(arch + ".expert_weights_norm").value_or(false);
    switch (optional_count(f, arch, "expert_gating_func")) {
        case 0:  // absent: the DeepSeek V2 / V2.5 files written before the key existed
        case 1: e.gating = moe_gating::softmax; break;
        case 2: e.gating = moe_gating::sigmoid; break;
        default:
            throw error(fmt::format("model metadata '{}.expert_gating_func' = {} is not supported (1 softmax, 2 sigmoid)",
                                    arch, optional_count(f, arch, "expert_gating_func")));
    }
    e.n_group = optional_count(f, arch, "expert_group_count");
    e.n_group_used = optional_count(f, arch, "expert_group_used_count");
    if (e.n_group > 1) {
        if (e.n_expert % e.n_group != 0 || e.n_group_used < 1 || e.n_group_used > e.n_group ||
            e.n_expert / e.n_group < 2 || e.n_group_used * (e.n_expert / e.n_group) < e.n_expert_used)
            throw error(fmt::format("model metadata: expert_group_count {} / expert_group_used_count {} do not fit "
                                    "{} experts of which {} are used",
                                    e.n_group, e.n_group_used, e.n_expert, e.n_expert_used));
    }
}

void adjust_deepseek2(const gguf::file& f, model_hparams& hp) {
    if (optional_count(f, hp.arch, "nextn_predict_layers") > 0)
        throw error("deepseek2 models with multi-token-prediction layers (nextn_predict_layers > 0) are not "
                    "supported yet");
    refuse_key(f, hp.arch, "attention.temperature_scale", "attention temperature tuning");
    read_mla(f, hp);
    set_rope_scales(f, hp);
    read_moe(f, hp);
}

void load_mla(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    auto n = [il](const char* suffix) { return layer_tensor_name(il, suffix); };
    const mla_hparams& a = hp.mla;
    mla_weights& m = lw.mla;
    const int64_t q_width = hp.n_head * a.k_head();
    if (a.q_lora_rank > 0) {
        m.wq_a = ld.require_matrix(n("attn_q_a.weight"), hp.n_embd, a.q_lora_rank);
        m.q_a_norm = ld.require_vector(n("attn_q_a_norm.weight"), a.q_lora_rank);
        m.wq_b = ld.require_matrix(n("attn_q_b.weight"), a.q_lora_rank, q_width);
    } else {
        lw.wq = ld.require_matrix(n("attn_q.weight"), hp.n_embd, q_width);
    }
    m.wkv_a = ld.require_matrix(n("attn_kv_a_mqa.weight"), hp.n_embd, a.kv_lora_rank + a.qk_rope);
    m.kv_a_norm = ld.require_vector(n("attn_kv_a_norm.weight"), a.kv_lora_rank);
    if (ld.has(n("attn_k_b.weight")) || !ld.has(n("attn_kv_b.weight"))) {
        const matrix k_b = ld.require_stacked(n("attn_k_b.weight"), a.qk_nope, a.kv_lora_rank, hp.n_head);
        const matrix v_b = ld.require_stacked(n("attn_v_b.weight"), a.kv_lora_rank, a.v_head, hp.n_head);
        for (int64_t h = 0; h < hp.n_head; ++h) {
            m.wk_b.push_back(row_slice(k_b, h * a.kv_lora_rank, a.kv_lora_rank));
            m.wv_b.push_back(row_slice(v_b, h * a.v_head, a.v_head));
        }
    } else {
        // One attn_kv_b: head h's rows are qk_nope key rows, then v_head value rows, each over the
        // latent. The absorbed form needs the key rows transposed ([kv_lora_rank][qk_nope]): an f32
        // copy, made once here; the value rows are used in place.
        const int64_t per_head = a.qk_nope + a.v_head;
        const matrix kv_b = ld.require_matrix(n("attn_kv_b.weight"), a.kv_lora_rank, hp.n_head * per_head);
        for (int64_t h = 0; h < hp.n_head; ++h) {
            const std::vector<float> k_rows = weight_loader::dequantize_rows(kv_b, h * per_head, a.qk_nope);
            std::vector<float> k_t(k_rows.size());
            for (int64_t i = 0; i < a.qk_nope; ++i)
                for (int64_t r = 0; r < a.kv_lora_rank; ++r)
                    k_t[static_cast<size_t>(r * a.qk_nope + i)] = k_rows[static_cast<size_t>(i * a.kv_lora_rank + r)];
            m.wk_b.push_back(ld.owned_matrix(std::move(k_t), a.qk_nope, a.kv_lora_rank));
            m.wv_b.push_back(row_slice(kv_b, h * per_head + a.qk_nope, a.v_head));
        }
    }
    lw.wo = ld.require_matrix(n("attn_output.weight"), hp.n_head * a.v_head, hp.n_embd);
}

void load_moe(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    auto n = [il](const char* suffix) { return layer_tensor_name(il, suffix); };
    const moe_hparams& e = hp.moe;
    moe_weights& m = lw.moe;
    m.gate_inp = ld.require_matrix(n("ffn_gate_inp.weight"), hp.n_embd, e.n_expert);
    m.probs_bias = ld.optional_vector(n("exp_probs_b.bias"), e.n_expert);
    if (ld.has(n("ffn_gate_up_exps.weight")))
        throw error(fmt::format("tensor {} (fused expert gate and up) is not supported yet; expected separate "
                                "ffn_gate_exps and ffn_up_exps",
                                n("ffn_gate_up_exps.weight")));
    const matrix gate = ld.require_stacked(n("ffn_gate_exps.weight"), hp.n_embd, e.n_ff_exp, e.n_expert);
    const matrix up = ld.require_stacked(n("ffn_up_exps.weight"), hp.n_embd, e.n_ff_exp, e.n_expert);
    const matrix down = ld.require_stacked(n("ffn_down_exps.weight"), e.n_ff_exp, hp.n_embd, e.n_expert);
    for (int64_t x = 0; x < e.n_expert; ++x) {
        m.gate.push_back(row_slice(gate, x * e.n_ff_exp, e.n_ff_exp));
        m.up.push_back(row_slice(up, x * e.n_ff_exp, e.n_ff_exp));
        m.down.push_back(row_slice(down, x * hp.n_embd, hp.n_embd));
    }
    if (e.n_expert_shared > 0) {
        const int64_t n_ff_sh = e.n_ff_exp * e.n_expert_shared;
        m.gate_shexp = ld.require_matrix(n("ffn_gate_shexp.weight"), hp.n_embd, n_ff_sh);
        m.up_shexp = ld.require_matrix(n("ffn_up_shexp.weight"), hp.n_embd, n_ff_sh);
        m.down_shexp = ld.require_matrix(n("ffn_down_shexp.weight"), n_ff_sh, hp.n_embd);
    }
}

void load_deepseek2_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    auto n = [il](const char* suffix) { return layer_tensor_name(il, suffix); };
    lw.attn_norm = ld.require_vector(n("attn_norm.weight"), hp.n_embd);
    load_mla(ld, hp, il, lw);
    lw.ffn_norm = ld.require_vector(n("ffn_norm.weight"), hp.n_embd);
    if (hp.moe.is_moe_layer(il)) {
        load_moe(ld, hp, il, lw);
    } else {
        lw.ffn_gate = ld.require_matrix(n("ffn_gate.weight"), hp.n_embd, hp.n_ff);
        lw.ffn_up = ld.require_matrix(n("ffn_up.weight"), hp.n_embd, hp.n_ff);
        lw.ffn_down = ld.require_matrix(n("ffn_down.weight"), hp.n_ff, hp.n_embd);
    }
}

}  // namespace

const arch_def& deepseek2_arch() {
    static const arch_def def{"deepseek2", "DeepSeek-V2 / V2-Lite / V3 (MLA + MoE)", kernels::rope_mode::normal,
                              &load_deepseek2_layer, &adjust_deepseek2};
    return def;
}

}  // namespace edgellm::model
