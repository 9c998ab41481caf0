// Synthetic llama / gemma2 / gemma3 / deepseek2 GGUF writer: named shapes, llama.cpp-style type mixes, a built-in
// SentencePiece byte vocab, and seeded random weights generated and quantized row by row while streaming.
#include "model/synth.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/error.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace edgellm::synth {

const std::vector<shape>& shapes() {
    // tiny keeps every row a whole number of 256-element k-quant blocks so each --type is really
    // exercised (llama.cpp would otherwise fall back to other types for those rows).
    static const std::vector<shape> k_shapes = {
        {"tiny", 256, 2, 4, 2, 512, 0, 512, 10000.0f, 1e-5f},
        // SmolLM-135M: tied embeddings, as the real model.
        {"small", 576, 30, 9, 3, 1536, 49152, 2048, 10000.0f, 1e-5f, true},
        {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f},
        // Llama-2-7B's layout (no GQA), for decode bandwidth benchmarks (3.6 GiB at Q4_0).
        {"llama-7b", 4096, 32, 32, 32, 11008, 32000, 4096, 10000.0f, 1e-5f},
        // Gemma layouts at tiny size (tied embeddings, post-norms; gemma3 adds Q/K norms), with
        // windows shorter than the context so sliding-window attention is exercised.
        {"gemma2-tiny", 256, 4, 4, 2, 512, 0, 512, 10000.0f, 1e-6f, true, "gemma2", 64},
        {"gemma3-tiny", 256, 6, 4, 1, 512, 0, 512, 1000000.0f, 1e-6f, true, "gemma3", 64},
        // DeepSeek-V2-Lite's layout at tiny size: MLA without Q LoRA (cached rows of 128 + 32 = 160,
        // whole q8_0 blocks), one dense layer then MoE layers of 8 experts (2 routed + 1 shared),
        // YaRN as V2-Lite declares it (factor 40 over an original context of 64, mscale_all_dim 0.707).
        {"deepseek2-tiny", 256, 3, 4, 1, 512, 0, 512, 10000.0f, 1e-6f, false, "deepseek2", 0,
         {0, 128, 32, 32, 32, 1, 8, 2, 1, 128, 40.0f, 64, 0.707f}},
    };
    return k_shapes;
}

const shape& find_shape(std::string_view name) {
    std::string known;
    for (const auto& s : shapes()) {
        if (s.name == name) return s;
        known += (known.empty() ? "" : ", ") + s.name;
    }
    throw usage_error("unknown shape '" + std::string(name) + "' (known: " + known + ")");
}

vocab builtin_vocab(int64_t n_vocab) {
    vocab v;
    std::set<std::string> seen;
    auto add = [&](const std::string& text, float score, int32_t type) {
        if (!seen.insert(text).second) return;
        v.tokens.push_back(text);
        v.scores.push_back(score);
        v.token_types.push_back(type);
    };
    add("<unk>", 0.0f, 2);
    add("<s>", 0.0f, 3);
    add("</s>", 0.0f, 3);
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) add(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", 0.0f, 6);
    const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's word-boundary marker
    float score = -1.0f;
    add(space, score, 1);
    for (int c = 0x21; c < 0x7f; ++c) add(std::string(1, static_cast<char>(c)), score -= 1.0f, 1);
    // Common words, each reachable by merging its prefixes (SPM merges adjacent pieces only
    // when the concatenation is itself a token).
    static const char* words[] = {
        "the", "of", "and", "to", "in", "is", "was", "he", "she", "it", "that", "for", "on", "with", "as",
        "his", "her", "they", "at", "be", "this", "had", "not", "are", "but", "from", "or", "have", "an",
        "one", "you", "were", "all", "we", "there", "can", "time", "day", "little", "girl", "boy", "once",
        "upon", "said", "play", "happy", "big", "mom", "very", "friend", "went", "saw", "wanted", "Once",
        "The", "He", "She", "They", "Lily", "Tim", "Hello", "world", "what", "how", "who", "why", "model"};
    for (const char* w : words) {
        const std::string word = space + w;
        for (size_t len = space.size() + 1; len <= word.size(); ++len) add(word.substr(0, len), score -= 1.0f, 1);
    }
    static const char* pieces[] = {"in", "ing", "er", "ed", "es", "en", "on", "an", "or", "ly", "re", "th", "he"};
    for (const char* p : pieces) {
        const std::string piece = p;
        for (size_t len = 2; len <= piece.size(); ++len) add(piece.substr(0, len), score -= 1.0f, 1);
    }
    // Padding up to the shape's vocab size with generated lower-case pieces ("▁ab", "▁ac", ...),
    // each reachable through its prefixes, so the tokenizer stays a valid SPM vocab.
    for (int64_t k = 0; n_vocab > 0 && static_cast<int64_t>(v.tokens.size()) < n_vocab; ++k) {
        std::string letters;
        for (int64_t x = k; ; x = x / 26 - 1) {
            letters.insert(letters.begin(), static_cast<char>('a' + x % 26));
            if (x < 26) break;
        }
        const std::string word = space + letters;
        for (size_t len = space.size() + 1; len <= word.size() && static_cast<int64_t>(v.tokens.size()) < n_vocab; ++len)
            add(word.substr(0, len), score -= 1.0f, 1);
    }
    return v;
}

namespace {

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

// One row of approximately normal values (Irwin-Hall: the sum of four uniforms, rescaled to unit
// variance). Pure integer arithmetic plus one multiply, so a seed gives the same bytes on every
// machine and compiler, and each row depends only on (seed, tensor name, row index).
void random_row(uint64_t seed, uint64_t tensor_hash, int64_t row, float sigma, float* out, int64_t n) {
    uint64_t state = seed ^ (tensor_hash * 0xd1342543de82ef95ull) ^ (static_cast<uint64_t>(row) * 0x9e3779b97f4a7c15ull);
    splitmix64(state);
    const float scale = sigma * 1.7320508f / 65536.0f;  // sqrt(3): variance of the sum is 4/12
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t z = splitmix64(state);
        const int64_t sum = static_cast<int64_t>(z & 0xffff) + static_cast<int64_t>((z >> 16) & 0xffff) +
                            static_cast<int64_t>((z >> 32) & 0xffff) + static_cast<int64_t>(z >> 48) - 2 * 65536 + 2;
        out[i] = static_cast<float>(sum) * scale;
    }
}

struct tensor_plan {
    std::string name;
    ggml_type type;
    int64_t ne0, ne1;  // ne1 == 1 for vectors
    float sigma;       // 0: a norm weight (all ones)
    int64_t ne2 = 1;   // > 1: a 3-D tensor of ne2 matrices (experts, MLA heads)
};

void set_u32(gguf::writer& w, const std::string& key, int64_t v) {
    w.set(key, gguf::value::make_u32(static_cast<uint32_t>(v)));
}

// The deepseek2 keys as convert_hf_to_gguf.py writes them for DeepSeek-V2 (split attn_k_b /
// attn_v_b: the cached MQA view in key_length / value_length, the per-head sizes in *_mla).
void set_deepseek2_metadata(gguf::writer& w, const shape& sh) {
    const std::string& a = sh.arch;
    const deepseek2_shape& d = sh.ds;
    set_u32(w, a + ".attention.head_count_kv", 1);
    set_u32(w, a + ".attention.key_length", d.kv_lora_rank + d.qk_rope);
    set_u32(w, a + ".attention.value_length", d.kv_lora_rank);
    set_u32(w, a + ".attention.key_length_mla", d.qk_nope + d.qk_rope);
    set_u32(w, a + ".attention.value_length_mla", d.v_head);
    set_u32(w, a + ".attention.q_lora_rank", d.q_lora_rank);
    set_u32(w, a + ".attention.kv_lora_rank", d.kv_lora_rank);
    set_u32(w, a + ".leading_dense_block_count", d.n_dense_lead);
    set_u32(w, a + ".expert_count", d.n_expert);
    set_u32(w, a + ".expert_used_count", d.n_expert_used);
    set_u32(w, a + ".expert_shared_count", d.n_expert_shared);
    set_u32(w, a + ".expert_feed_forward_length", d.n_ff_exp);
    w.set(a + ".expert_weights_scale", gguf::value::make_f32(1.0f));
    w.set(a + ".expert_weights_norm", gguf::value::make_bool(false));
    set_u32(w, a + ".expert_gating_func", 1);  // softmax
    if (d.yarn_factor > 0.0f) {
        w.set(a + ".rope.scaling.type", gguf::value::make_string("yarn"));
        w.set(a + ".rope.scaling.factor", gguf::value::make_f32(d.yarn_factor));
        set_u32(w, a + ".rope.scaling.original_context_length", d.yarn_orig_ctx);
        w.set(a + ".rope.scaling.yarn_log_multiplier", gguf::value::make_f32(0.1f * d.yarn_mscale_all_dim));
    }
}

}  // namespace

summary write_model(const std::string& path, const options& opts) {
    const shape& sh = find_shape(opts.shape);
    const type_mix& mix = find_type_mix(opts.type);
    if (path.empty()) throw usage_error("no output path given");

    gguf::writer w;
    // Tokenizer first: its size fixes the embedding shapes.
    std::vector<std::pair<std::string, gguf::value>> tokenizer_kv;
    int64_t n_vocab = 0;
    if (!opts.vocab_from.empty()) {
        const auto vf = gguf::file::open(opts.vocab_from);
        for (const auto& [key, val] : vf.metadata())
            if (key.rfind("tokenizer.", 0) == 0) tokenizer_kv.emplace_back(key, val);
        if (!vf.has("tokenizer.ggml.tokens"))
            throw usage_error(opts.vocab_from + " has no tokenizer.ggml.tokens array to take the vocab from");
        n_vocab = static_cast<int64_t>(vf.get_array("tokenizer.ggml.tokens").items.size());
        if (n_vocab == 0) throw usage_error(opts.vocab_from + " has an empty vocab");
    } else {
        const vocab v = builtin_vocab(sh.n_vocab);
        n_vocab = static_cast<int64_t>(v.tokens.size());
        std::vector<gguf::value> tokens, scores, types;
        for (size_t i = 0; i < v.tokens.size(); ++i) {
            tokens.push_back(gguf::value::make_string(v.tokens[i]));
            scores.push_back(gguf::value::make_f32(v.scores[i]));
            types.push_back(gguf::value::make_i32(v.token_types[i]));
        }
        tokenizer_kv = {
            {"tokenizer.ggml.model", gguf::value::make_string("llama")},
            {"tokenizer.ggml.tokens", gguf::value::make_array(gguf::value_type::string, std::move(tokens))},
            {"tokenizer.ggml.scores", gguf::value::make_array(gguf::value_type::f32, std::move(scores))},
            {"tokenizer.ggml.token_type", gguf::value::make_array(gguf::value_type::i32, std::move(types))},
            {"tokenizer.ggml.bos_token_id", gguf::value::make_u32(1)},
            {"tokenizer.ggml.eos_token_id", gguf::value::make_u32(2)},
            {"tokenizer.ggml.unknown_token_id", gguf::value::make_u32(0)},
            {"tokenizer.ggml.add_bos_token", gguf::value::make_bool(true)},
            {"tokenizer.ggml.add_eos_token", gguf::value::make_bool(false)},
        };
    }

    const int64_t head_dim = sh.n_embd / sh.n_head;
    const int64_t n_embd_kv = head_dim * sh.n_head_kv;
    const int64_t n_gqa = sh.n_head / sh.n_head_kv;
    if (opts.n_layer < 0) throw usage_error("--n-layer must be positive");
    const int n_layer = static_cast<int>(opts.n_layer > 0 ? opts.n_layer : sh.n_layer);
    const std::string name = opts.name.empty() ? "edgellm-synth-" + sh.name + "-" + mix.name : opts.name;

    w.set("general.architecture", gguf::value::make_string(sh.arch));
    const std::string& arch = sh.arch;  // metadata key prefix
    w.set("general.name", gguf::value::make_string(name));
    w.set("general.description",
          gguf::value::make_string("synthetic random weights written by edgellm synth (shape " + sh.name + ", type " +
                                   mix.name + (opts.pure ? " pure" : "") + ", seed " + std::to_string(opts.seed) +
                                   "); every tensor quantized with edgellm's reference quantizers; "
                                   "not a trained model"));
    w.set("general.file_type", gguf::value::make_u32(mix.file_type));
    w.set("general.quantization_version", gguf::value::make_u32(2));
    w.set(arch + ".vocab_size", gguf::value::make_u32(static_cast<uint32_t>(n_vocab)));
    w.set(arch + ".context_length", gguf::value::make_u32(static_cast<uint32_t>(sh.n_ctx)));
    w.set(arch + ".embedding_length", gguf::value::make_u32(static_cast<uint32_t>(sh.n_embd)));
    w.set(arch + ".block_count", gguf::value::make_u32(static_cast<uint32_t>(n_layer)));
    w.set(arch + ".feed_forward_length", gguf::value::make_u32(static_cast<uint32_t>(sh.n_ff)));
    w.set(arch + ".attention.head_count", gguf::value::make_u32(static_cast<uint32_t>(sh.n_head)));
    w.set(arch + ".attention.head_count_kv", gguf::value::make_u32(static_cast<uint32_t>(sh.n_head_kv)));
    w.set(arch + ".attention.layer_norm_rms_epsilon", gguf::value::make_f32(sh.rms_eps));
    w.set(arch + ".rope.freq_base", gguf::value::make_f32(sh.rope_freq_base));
    w.set(arch + ".rope.dimension_count",
          gguf::value::make_u32(static_cast<uint32_t>(arch == "deepseek2" ? sh.ds.qk_rope : head_dim)));
    if (sh.n_swa > 0)
        w.set(arch + ".attention.sliding_window", gguf::value::make_u32(static_cast<uint32_t>(sh.n_swa)));
    if (arch == "gemma2") {
        w.set(arch + ".attn_logit_softcapping", gguf::value::make_f32(50.0f));
        w.set(arch + ".final_logit_softcapping", gguf::value::make_f32(30.0f));
    }
    if (arch == "deepseek2") set_deepseek2_metadata(w, sh);  // overrides head_count_kv
    for (auto& [key, val] : tokenizer_kv) w.set(key, std::move(val));

    // Fan-in scaled weights keep every projection's output at unit scale, so activations and
    // logits stay O(1) at any depth; an untied embedding is N(0, 1) (each layer sees it RMS-normed).
    std::vector<tensor_plan> plan;
    auto matrix = [&](const std::string& tname, int il, int64_t ne0, int64_t ne1, float sigma) {
        const std::string rule_name = sh.tied_embeddings && tname == "token_embd.weight" ? "output.weight" : tname;
        plan.push_back({tname, tensor_type(mix, rule_name, il, n_layer, ne0, n_gqa, opts.pure), ne0, ne1, sigma});
    };
    auto norm = [&](const std::string& tname, int64_t ne0) { plan.push_back({tname, ggml_type::f32, ne0, 1, 0.0f}); };
    auto stacked = [&](const std::string& tname, int il, int64_t ne0, int64_t ne1, int64_t ne2, float sigma) {
        matrix(tname, il, ne0, ne1, sigma);
        plan.back().ne2 = ne2;
    };
    const float s_embd = 1.0f / std::sqrt(static_cast<float>(sh.n_embd));
    const float s_ff = 1.0f / std::sqrt(static_cast<float>(sh.n_ff));
    // Tied: the embedding doubles as the output projection, so it takes the fan-in scale too.
    matrix("token_embd.weight", 0, sh.n_embd, n_vocab, sh.tied_embeddings ? s_embd : 1.0f);
    const deepseek2_shape& ds = sh.ds;
    for (int il = 0; sh.arch == "deepseek2" && il < n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        const auto inv_sqrt = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
        norm(p + "attn_norm.weight", sh.n_embd);
        matrix(p + "attn_q.weight", il, sh.n_embd, sh.n_head * (ds.qk_nope + ds.qk_rope), s_embd);
        matrix(p + "attn_kv_a_mqa.weight", il, sh.n_embd, ds.kv_lora_rank + ds.qk_rope, s_embd);
        norm(p + "attn_kv_a_norm.weight", ds.kv_lora_rank);
        stacked(p + "attn_k_b.weight", il, ds.qk_nope, ds.kv_lora_rank, sh.n_head, inv_sqrt(ds.qk_nope));
        stacked(p + "attn_v_b.weight", il, ds.kv_lora_rank, ds.v_head, sh.n_head, inv_sqrt(ds.kv_lora_rank));
        matrix(p + "attn_output.weight", il, sh.n_head * ds.v_head, sh.n_embd, inv_sqrt(sh.n_head * ds.v_head));
        norm(p + "ffn_norm.weight", sh.n_embd);
        if (il < ds.n_dense_lead) {
            matrix(p + "ffn_gate.weight", il, sh.n_embd, sh.n_ff, s_embd);
            matrix(p + "ffn_down.weight", il, sh.n_ff, sh.n_embd, s_ff);
            matrix(p + "ffn_up.weight", il, sh.n_embd, sh.n_ff, s_embd);
            continue;
        }
        const int64_t n_ff_sh = ds.n_ff_exp * ds.n_expert_shared;
        matrix(p + "ffn_gate_inp.weight", il, sh.n_embd, ds.n_expert, 1.0f);  // well-separated router scores
        stacked(p + "ffn_gate_exps.weight", il, sh.n_embd, ds.n_ff_exp, ds.n_expert, s_embd);
        stacked(p + "ffn_down_exps.weight", il, ds.n_ff_exp, sh.n_embd, ds.n_expert, inv_sqrt(ds.n_ff_exp));
        stacked(p + "ffn_up_exps.weight", il, sh.n_embd, ds.n_ff_exp, ds.n_expert, s_embd);
        matrix(p + "ffn_gate_shexp.weight", il, sh.n_embd, n_ff_sh, s_embd);
        matrix(p + "ffn_down_shexp.weight", il, n_ff_sh, sh.n_embd, inv_sqrt(n_ff_sh));
        matrix(p + "ffn_up_shexp.weight", il, sh.n_embd, n_ff_sh, s_embd);
    }
    for (int il = 0; sh.arch != "deepseek2" && il < n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        norm(p + "attn_norm.weight", sh.n_embd);
        matrix(p + "attn_q.weight", il, sh.n_embd, sh.n_embd, s_embd);
        matrix(p + "attn_k.weight", il, sh.n_embd, n_embd_kv, s_embd);
        matrix(p + "attn_v.weight", il, sh.n_embd, n_embd_kv, s_embd);
        matrix(p + "attn_output.weight", il, sh.n_embd, sh.n_embd, s_embd);
        norm(p + "ffn_norm.weight", sh.n_embd);
        matrix(p + "ffn_gate.weight", il, sh.n_embd, sh.n_ff, s_embd);
        matrix(p + "ffn_down.weight", il, sh.n_ff, sh.n_embd, s_ff);
        matrix(p + "ffn_up.weight", il, sh.n_embd, sh.n_ff, s_embd);
        if (sh.arch == "gemma3") {
            norm(p + "attn_q_norm.weight", head_dim);
            norm(p + "attn_k_norm.weight", head_dim);
        }
        if (sh.arch == "gemma2" || sh.arch == "gemma3") {
            norm(p + "post_attention_norm.weight", sh.n_embd);
            norm(p + "post_ffw_norm.weight", sh.n_embd);
        }
    }
    norm("output_norm.weight", sh.n_embd);
    if (!sh.tied_embeddings) matrix("output.weight", n_layer - 1, sh.n_embd, n_vocab, s_embd);

    summary sum;
    sum.path = path;
    sum.shape = sh.name;
    sum.type = mix.name;
    sum.n_vocab = static_cast<uint64_t>(n_vocab);
    for (const auto& tp : plan) {
        sum.n_params += static_cast<uint64_t>(tp.ne0 * tp.ne1 * tp.ne2);
        sum.tensor_types[std::string(type_name(tp.type))]++;
    }

    size_t n_done = 0;
    uint64_t bytes_done = 0;
    for (const auto& tp : plan) {
        const std::vector<int64_t> ne = tp.ne1 == 1 && tp.sigma == 0.0f ? std::vector<int64_t>{tp.ne0}
                                        : tp.ne2 > 1                    ? std::vector<int64_t>{tp.ne0, tp.ne1, tp.ne2}
                                                                        : std::vector<int64_t>{tp.ne0, tp.ne1};
        w.add_tensor_lazy(tp.name, tp.type, ne, [&, tp](uint8_t* dst, size_t size_bytes) {
            const size_t row_bytes = row_size(tp.type, tp.ne0);
            const int64_t n_rows = tp.ne1 * tp.ne2;
            if (size_bytes != row_bytes * static_cast<size_t>(n_rows)) throw error("synth: size mismatch for " + tp.name);
            if (tp.sigma == 0.0f) {
                std::vector<float> ones(static_cast<size_t>(tp.ne0), 1.0f);
                quantize_row(tp.type, ones.data(), dst, tp.ne0);
            } else {
                const uint64_t h = fnv1a(tp.name);
                std::exception_ptr failure;
                std::mutex failure_mutex;
#pragma omp parallel
                {
                    std::vector<float> buf(static_cast<size_t>(tp.ne0));
#pragma omp for schedule(dynamic, 8)
                    for (int64_t r = 0; r < n_rows; ++r) {
                        try {
                            random_row(opts.seed, h, r, tp.sigma, buf.data(), tp.ne0);
                            quantize_row(tp.type, buf.data(), dst + static_cast<size_t>(r) * row_bytes, tp.ne0);
                        } catch (...) {
                            std::lock_guard<std::mutex> lock(failure_mutex);
                            if (!failure) failure = std::current_exception();
                        }
                    }
                }
                if (failure) std::rethrow_exception(failure);
            }
            ++n_done;
            bytes_done += size_bytes;
            if (opts.progress) opts.progress(n_done, plan.size(), tp.name, bytes_done);
        });
    }
    w.write(path);
    sum.file_bytes = std::filesystem::file_size(path);
    return sum;
}

}  // namespace edgellm::synth
