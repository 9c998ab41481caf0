// Model memory facts from a GGUF file: hyperparameters from the metadata, weight bytes from
// the tensor table grouped by layer (kept apart from memory_plan.cpp so the planner does not
// pull in the GGUF reader).
#include <algorithm>
#include <string>

#include "core/error.h"
#include "device/memory_plan.h"
#include "gguf/gguf.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace edgellm::device {
namespace {

// A hyperparameter that may be one integer or a per-layer array (e.g. head_count_kv in
// models with varying layers): the planner takes the largest, which never underestimates.
std::optional<int64_t> max_int(const gguf::file& f, const std::string& key) {
    const gguf::value* v = f.find(key);
    if (!v) return std::nullopt;
    if (v->type == gguf::value_type::array) {
        int64_t best = 0;
        for (const auto& item : v->as_array().items) best = std::max(best, item.as_i64());
        return best;
    }
    return v->as_i64();
}

int64_t require_int(const gguf::file& f, const std::string& key) {
    auto v = max_int(f, key);
    if (!v)
        throw error("GGUF file " + f.path() + " lacks '" + key +
                    "', which the memory planner needs");
    return *v;
}

// "blk.12.attn_q.weight" -> 12; -1 for tensors outside the layers.
int layer_of(const std::string& name) {
    if (name.rfind("blk.", 0) != 0) return -1;
    size_t dot = name.find('.', 4);
    if (dot == std::string::npos || dot == 4) return -1;
    int il = 0;
    for (size_t i = 4; i < dot; ++i) {
        if (name[i] < '0' || name[i] > '9') return -1;
        il = il * 10 + (name[i] - '0');
        if (il > 1'000'000) return -1;
    }
    return il;
}

}  // namespace

model_memory_facts model_facts_from_gguf(const std::string& path) {
    gguf::file f = gguf::file::open(path);
    model_memory_facts m;
    m.architecture = f.get_string_opt("general.architecture").value_or("");
    if (m.architecture.empty()) throw error("GGUF file " + path + " lacks 'general.architecture'");
    m.name = f.get_string_opt("general.name").value_or(path);
    const std::string a = m.architecture + ".";
    const int64_t n_layer = require_int(f, a + "block_count");
    if (n_layer <= 0 || n_layer > 100000)
        throw error("GGUF file " + path + ": implausible block_count " + std::to_string(n_layer));
    m.n_layer = static_cast<int>(n_layer);
    m.n_embd = require_int(f, a + "embedding_length");
    m.n_head = require_int(f, a + "attention.head_count");
    m.n_head_kv = max_int(f, a + "attention.head_count_kv").value_or(m.n_head);
    m.n_ff = max_int(f, a + "feed_forward_length").value_or(0);
    m.n_ctx_train = max_int(f, a + "context_length").value_or(0);
    if (m.n_head <= 0) throw error("GGUF file " + path + ": attention.head_count must be positive");
    m.head_dim_k = max_int(f, a + "attention.key_length").value_or(m.n_embd / m.n_head);
    m.head_dim_v = max_int(f, a + "attention.value_length").value_or(m.n_embd / m.n_head);
    // A file the engine loads: the KV geometry its cache is built from (kv_cache), e.g. MLA's single
    // latent + rope row per token where the metadata describes K and V heads. Files it refuses
    // (another backend may run them) keep the estimate from the keys above.
    const auto& archs = model::supported_archs();
    if (std::any_of(archs.begin(), archs.end(), [&](const auto* d) { return d->name == m.architecture; })) {
        try {
            const model::model_hparams hp = model::read_model_hparams(f);
            m.n_head_kv = hp.n_head_kv;
            m.head_dim_k = hp.head_dim;
            m.head_dim_v = hp.head_dim_v;
            m.values_in_keys = hp.kv_rows_per_token() == 1;
            if (model::kv_cache::windowed_for(hp, /*swa_full=*/false)) {
                m.layer_window.assign(static_cast<size_t>(m.n_layer), 0);
                for (int il = 0; il < m.n_layer; ++il) m.layer_window[static_cast<size_t>(il)] = hp.window(il);
            }
        } catch (const error&) {
        }
    }

    m.layer_weight_bytes.assign(static_cast<size_t>(m.n_layer), 0);
    for (const auto& t : f.tensors()) {
        int il = layer_of(t.name);
        if (il >= 0 && il < m.n_layer) {
            m.layer_weight_bytes[static_cast<size_t>(il)] += t.size_bytes;
        } else if (t.name.rfind("token_embd.", 0) == 0) {
            m.embedding_bytes += t.size_bytes;
            m.n_vocab = std::max(m.n_vocab, t.ne[1]);
        } else if (t.name.rfind("output.", 0) == 0 || t.name.rfind("output_norm.", 0) == 0) {
            m.output_bytes += t.size_bytes;
        } else {
            m.other_bytes += t.size_bytes;
        }
    }
    if (const gguf::value* tokens = f.find("tokenizer.ggml.tokens");
        tokens && tokens->type == gguf::value_type::array)
        m.n_vocab =
            std::max<int64_t>(m.n_vocab, static_cast<int64_t>(tokens->as_array().items.size()));
    return m;
}

}  // namespace edgellm::device
