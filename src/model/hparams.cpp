// Reads model hyperparameters from GGUF metadata and checks that they are consistent.
#include "model/hparams.h"

#include <fmt/format.h>

namespace edgellm::model {
namespace {

// Reads a positive integer "{arch}.{key}"; `fallback` < 0 means the key is required.
int64_t positive_key(const gguf::file& f, const std::string& arch, const std::string& key,
                     int64_t fallback = -1) {
    const std::string full = arch + "." + key;
    auto v = f.get_u64_opt(full);
    if (!v) {
        if (fallback < 0) throw error(fmt::format("model metadata is missing '{}'", full));
        return fallback;
    }
    if (*v == 0 || *v > (uint64_t{1} << 31))
        throw error(fmt::format("model metadata '{}' = {} is out of range", full, *v));
    return static_cast<int64_t>(*v);
}

int32_t token_id_key(const gguf::file& f, const std::string& key) {
    auto v = f.get_u64_opt(key);
    if (!v) return -1;
    if (*v > (uint64_t{1} << 31)) throw error(fmt::format("model metadata '{}' = {} is out of range", key, *v));
    return static_cast<int32_t>(*v);
}

}  // namespace

model_hparams read_hparams(const gguf::file& f, const std::string& arch) {
    model_hparams hp;
    hp.arch = arch;
    hp.name = f.get_string_opt("general.name").value_or("");
    hp.n_layer = positive_key(f, arch, "block_count");
    hp.n_embd = positive_key(f, arch, "embedding_length");
    hp.n_head = positive_key(f, arch, "attention.head_count");
    hp.n_head_kv = positive_key(f, arch, "attention.head_count_kv", hp.n_head);
    hp.n_ff = positive_key(f, arch, "feed_forward_length");
    hp.n_ctx_train = positive_key(f, arch, "context_length");
    if (!f.has(arch + ".attention.key_length") && hp.n_embd % hp.n_head != 0)
        throw error(fmt::format("model metadata: embedding_length {} is not a multiple of head_count {}",
                                hp.n_embd, hp.n_head));
    hp.head_dim = positive_key(f, arch, "attention.key_length", hp.n_embd / hp.n_head);
    // A value size other than the key size is checked by model loading, after the architecture
    // has had its say (MLA's value heads differ from its key heads).
    hp.head_dim_v = positive_key(f, arch, "attention.value_length", hp.head_dim);
    if (hp.n_head % hp.n_head_kv != 0)
        throw error(fmt::format("model metadata: head_count {} is not a multiple of head_count_kv {}",
                                hp.n_head, hp.n_head_kv));
    hp.n_rot = positive_key(f, arch, "rope.dimension_count", hp.head_dim);
    if (hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
        throw error(fmt::format("model metadata: rope.dimension_count {} must be even and <= head dim {}",
                                hp.n_rot, hp.head_dim));

    hp.rms_eps = static_cast<float>(f.get_f64_opt(arch + ".attention.layer_norm_rms_epsilon").value_or(1e-5));
    if (!(hp.rms_eps > 0.0f && hp.rms_eps < 1.0f))
        throw error(fmt::format("model metadata: layer_norm_rms_epsilon {} is out of range", hp.rms_eps));
    hp.rope_freq_base = static_cast<float>(f.get_f64_opt(arch + ".rope.freq_base").value_or(10000.0));
    if (!(hp.rope_freq_base > 0.0f))
        throw error(fmt::format("model metadata: rope.freq_base {} must be positive", hp.rope_freq_base));

    // RoPE scaling: linear ("position interpolation") divides positions by the factor. Llama 3.1's
    // per-dimension factors come from the rope_freqs.weight tensor instead (see weights).
    const std::string scaling = f.get_string_opt(arch + ".rope.scaling.type").value_or("none");
    double factor = f.get_f64_opt(arch + ".rope.scaling.factor").value_or(0.0);
    if (factor == 0.0) factor = f.get_f64_opt(arch + ".rope.scale_linear").value_or(0.0);
    if (scaling == "linear" || (scaling == "none" && factor > 0.0 && f.has(arch + ".rope.scale_linear"))) {
        if (!(factor > 0.0)) throw error(fmt::format("model metadata: linear rope scaling needs a positive factor"));
        hp.rope_freq_scale = static_cast<float>(1.0 / factor);
    } else if (scaling == "yarn") {
        // YaRN (arXiv:2309.00071) as ggml_rope_ext applies it; model loading refuses it for
        // architectures whose attention does not implement it.
        if (!(factor > 0.0))
            throw error(fmt::format("model metadata: yarn rope scaling needs a positive '{}.rope.scaling.factor'", arch));
        hp.rope_freq_scale = static_cast<float>(1.0 / factor);
        hp.rope_yarn = true;
        hp.n_ctx_orig_yarn = positive_key(f, arch, "rope.scaling.original_context_length", hp.n_ctx_train);
    } else if (scaling != "none" && scaling != "llama3") {
        throw error(fmt::format(
            "model metadata: rope scaling type '{}' is not supported (supported: none, linear; yarn for deepseek2)",
            scaling));
    }

    hp.n_swa = static_cast<int64_t>(f.get_u64_opt(arch + ".attention.sliding_window").value_or(0));

    hp.causal = f.get_bool_opt(arch + ".attention.causal").value_or(true);
    if (auto pt = f.get_u64_opt(arch + ".pooling_type")) {
        if (*pt > 4) throw error(fmt::format("model metadata: {}.pooling_type {} is out of range (0..4)", arch, *pt));
        hp.pooling_type = static_cast<int>(*pt);
    }

    hp.bos_id = token_id_key(f, "tokenizer.ggml.bos_token_id");
    hp.eos_id = token_id_key(f, "tokenizer.ggml.eos_token_id");
    hp.eot_id = token_id_key(f, "tokenizer.ggml.eot_token_id");
    hp.eom_id = token_id_key(f, "tokenizer.ggml.eom_token_id");

    const gguf::tensor_info* embd = f.find_tensor("token_embd.weight");
    if (!embd) throw error("model is missing tensor token_embd.weight");
    hp.n_vocab = embd->ne[1];
    hp.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return hp;
}

}  // namespace edgellm::model
