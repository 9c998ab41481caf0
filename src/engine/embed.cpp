// Embeddings over the shared forward pass: batching, pooling, normalisation.
#include "engine/embed.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/timing.h"
#include "kernels/kernels.h"

namespace edgellm::engine {

const char* pooling_name(pooling p) {
    switch (p) {
        case pooling::none:
            return "none";
        case pooling::mean:
            return "mean";
        case pooling::cls:
            return "cls";
        case pooling::last:
            return "last";
    }
    return "?";
}

std::optional<pooling> parse_pooling(std::string_view s) {
    for (pooling p : {pooling::none, pooling::mean, pooling::cls, pooling::last})
        if (s == pooling_name(p)) return p;
    return std::nullopt;
}

pooling model_pooling(const model::model_hparams& hp) {
    switch (hp.pooling_type) {
        case 0:
            return pooling::none;
        case 1:
            return pooling::mean;
        case 2:
            return pooling::cls;
        case 3:
            return pooling::last;
        case 4:
            throw usage_error(fmt::format(
                "model '{}' uses rank pooling (a reranker), which is not supported; pass a "
                "pooling (mean, cls, last, none) explicitly",
                hp.name.empty() ? hp.arch : hp.name));
        default:
            return hp.causal ? pooling::last : pooling::mean;
    }
}

void pool_hidden(const float* hidden, int64_t n_tokens, int64_t n_embd, pooling p,
                 std::vector<float>& out) {
    if (n_tokens <= 0) throw error("pooling an empty sequence");
    const auto row = [&](int64_t t) { return hidden + t * n_embd; };
    switch (p) {
        case pooling::none:
            out.assign(hidden, hidden + n_tokens * n_embd);
            return;
        case pooling::cls:
            out.assign(row(0), row(0) + n_embd);
            return;
        case pooling::last:
            out.assign(row(n_tokens - 1), row(n_tokens - 1) + n_embd);
            return;
        case pooling::mean: {
            std::vector<double> sum(static_cast<size_t>(n_embd), 0.0);
            for (int64_t t = 0; t < n_tokens; ++t)
                for (int64_t i = 0; i < n_embd; ++i) sum[static_cast<size_t>(i)] += row(t)[i];
            out.resize(static_cast<size_t>(n_embd));
            for (int64_t i = 0; i < n_embd; ++i)
                out[static_cast<size_t>(i)] =
                    static_cast<float>(sum[static_cast<size_t>(i)] / double(n_tokens));
            return;
        }
    }
}

void l2_normalize(std::vector<float>& v, int64_t n_embd) {
    for (size_t r = 0; r + static_cast<size_t>(n_embd) <= v.size();
         r += static_cast<size_t>(n_embd)) {
        double ss = 0.0;
        for (int64_t i = 0; i < n_embd; ++i) ss += double(v[r + i]) * v[r + i];
        if (ss <= 0.0) continue;
        const double inv = 1.0 / std::sqrt(ss);
        for (int64_t i = 0; i < n_embd; ++i) v[r + i] = static_cast<float>(v[r + i] * inv);
    }
}

embedder::embedder(std::shared_ptr<const loaded_model> m, int n_threads, int64_t n_ctx,
                   int64_t n_batch, int n_seq)
    : lm_(std::move(m)), n_seq_(std::max(1, n_seq)) {
    const model::model_hparams& hp = lm_->hparams();
    if (!lm_->get_tokenizer())
        throw usage_error("embeddings need the model's tokenizer: " + lm_->tokenizer_error());
    n_ctx_ = n_ctx > 0 ? n_ctx : std::min<int64_t>(hp.n_ctx_train, 8192);
    if (n_ctx_ > hp.n_ctx_train)
        throw usage_error(
            fmt::format("context {} exceeds the model's {} positions", n_ctx_, hp.n_ctx_train));
    // An encoder needs each input whole in one step (bidirectional attention); a decoder's long
    // input runs in steps of n_batch tokens, so its scratch stays small (n_batch x n_ff floats).
    n_batch = hp.causal ? std::min(n_batch, int64_t{512}) : std::max(n_batch, n_ctx_);
    // A pool for one pass: its tokens (or one whole input) plus the last part-filled block of each
    // sequence. f32 for the small encoders; f16 (llama.cpp's default) for decoders, whose rows are
    // wide.
    kv_ = std::make_unique<model::kv_cache>(
        hp, n_ctx_, hp.causal ? ggml_type::f16 : ggml_type::f32, n_seq_,
        std::max(n_batch, n_ctx_) + int64_t{n_seq_} * model::k_kv_block_size);
    fwd_ = std::make_unique<model::forward_pass>(lm_->get_model(), n_batch, n_ctx_, n_threads);
}

int64_t embedder::n_embd() const {
    return lm_->hparams().n_embd;
}

std::vector<int32_t> embedder::tokenize(std::string_view text) const {
    return lm_->get_tokenizer()->encode(text, /*add_bos=*/true, /*parse_special=*/false);
}

embed_result embedder::embed(const std::vector<std::string>& texts, const embed_options& o) {
    stopwatch sw;
    std::vector<std::vector<int32_t>> ids;
    ids.reserve(texts.size());
    const tokenizer& tok = *lm_->get_tokenizer();
    for (size_t i = 0; i < texts.size(); ++i) {
        std::vector<int32_t> t = tokenize(texts[i]);
        if (t.empty()) throw usage_error(fmt::format("input {} has no tokens", i));
        if (static_cast<int64_t>(t.size()) > n_ctx_) {
            if (!o.truncate)
                throw usage_error(fmt::format(
                    "input {} has {} tokens, more than the context of {} (truncation is off)", i,
                    t.size(), n_ctx_));
            // Keep the special token the tokenizer appended ([SEP] / EOS), as HF truncation does.
            const int32_t last = t.back();
            const bool keep_last = tok.is_special(last) && t.size() >= 2;
            t.resize(static_cast<size_t>(n_ctx_));
            if (keep_last) t.back() = last;
        }
        ids.push_back(std::move(t));
    }
    embed_options o2 = o;
    o2.truncate = true;  // done above
    embed_result r = embed_tokens(std::move(ids), o2);
    r.ms = sw.elapsed_ms();
    return r;
}

embed_result embedder::embed_tokens(std::vector<std::vector<int32_t>> inputs,
                                    const embed_options& o) {
    stopwatch sw;
    const model::model_hparams& hp = lm_->hparams();
    embed_result r;
    r.n_embd = hp.n_embd;
    r.pool = o.pool ? *o.pool : model_pooling(hp);
    for (size_t i = 0; i < inputs.size(); ++i) {
        std::vector<int32_t>& t = inputs[i];
        if (t.empty()) throw usage_error(fmt::format("input {} is empty", i));
        for (int32_t id : t)
            if (id < 0 || id >= hp.n_vocab)
                throw usage_error(
                    fmt::format("input {}: token id {} is outside the vocabulary (0..{})", i, id,
                                hp.n_vocab - 1));
        if (static_cast<int64_t>(t.size()) > n_ctx_) {
            if (!o.truncate)
                throw usage_error(fmt::format(
                    "input {} has {} tokens, more than the context of {} (truncation is off)", i,
                    t.size(), n_ctx_));
            t.resize(static_cast<size_t>(n_ctx_));
        }
    }
    r.vectors.resize(inputs.size());
    r.n_tokens.resize(inputs.size());
    model::batch b;
    const int64_t n_batch = fwd_->n_batch();
    for (size_t first = 0; first < inputs.size();) {
        // As many whole inputs as fit the pass's tokens and sequences
        size_t last = first;
        int64_t n_tok = 0;
        // (at least one: a decoder's input longer than n_batch runs alone, in several steps).
        while (last < inputs.size() && static_cast<int>(last - first) < n_seq_ &&
               (last == first || n_tok + static_cast<int64_t>(inputs[last].size()) <= n_batch))
            n_tok += static_cast<int64_t>(inputs[last++].size());
        b.clear();
        for (size_t i = first; i < last; ++i) {
            const auto seq = static_cast<int32_t>(i - first);
            for (size_t p = 0; p < inputs[i].size(); ++p)
                b.add(inputs[i][p], static_cast<int64_t>(p), seq, false);
        }
        std::span<const float> hidden;
        try {
            hidden = fwd_->eval_embeddings(*kv_, b);
        } catch (...) {
            kv_->clear_all();
            throw;
        }
        kv_->clear_all();
        ++r.n_batches;
        size_t row = 0;
        for (size_t i = first; i < last; ++i) {
            const auto n = static_cast<int64_t>(inputs[i].size());
            pool_hidden(hidden.data() + row * static_cast<size_t>(hp.n_embd), n, hp.n_embd, r.pool,
                        r.vectors[i]);
            if (o.normalize) l2_normalize(r.vectors[i], hp.n_embd);
            r.n_tokens[i] = n;
            row += static_cast<size_t>(n);
        }
        first = last;
    }
    r.ms = sw.elapsed_ms();
    return r;
}

classify_result embedder::classify(const std::vector<std::string>& texts) {
    const model::model& m = lm_->get_model();
    const model::model_weights& w = m.weights();
    const model::model_hparams& hp = m.hparams();
    if (!w.cls_out)
        throw usage_error(
            fmt::format("model '{}' has no classification head (cls.output.weight): use embeddings",
                        hp.name.empty() ? hp.arch : hp.name));
    const gguf::file& f = m.file();
    const std::string act = f.get_string_opt("edgellm.classifier.activation").value_or("tanh");
    if (act != "tanh" && act != "relu")
        throw usage_error(
            fmt::format("edgellm.classifier.activation '{}' is not supported (tanh, relu)", act));
    const int64_t n_labels = w.cls_out.n_rows;
    classify_result r;
    const std::string labels_key = hp.arch + ".classifier.output_labels";
    if (f.has(labels_key)) {
        for (const gguf::value& v : f.get_array(labels_key).items)
            r.labels.push_back(v.as_string());
        if (static_cast<int64_t>(r.labels.size()) != n_labels)
            throw usage_error(fmt::format("{} has {} labels but the head has {} outputs",
                                          labels_key, r.labels.size(), n_labels));
    } else {
        for (int64_t i = 0; i < n_labels; ++i) r.labels.push_back(fmt::format("LABEL_{}", i));
    }
    embed_options o;
    o.pool = pooling::cls;
    o.normalize = false;
    const embed_result e = embed(texts, o);
    std::vector<float> h(static_cast<size_t>(hp.n_embd));
    for (const std::vector<float>& v : e.vectors) {
        const float* x = v.data();
        if (w.cls) {
            model::mul_mat(w.cls, v.data(), 1, h.data(), 1);
            if (w.cls_b) kernels::add(h.data(), w.cls_b, hp.n_embd);
            for (float& y : h) y = act == "tanh" ? std::tanh(y) : std::max(0.0f, y);
            x = h.data();
        }
        std::vector<float> logits(static_cast<size_t>(n_labels));
        model::mul_mat(w.cls_out, x, 1, logits.data(), 1);
        if (w.cls_out_b) kernels::add(logits.data(), w.cls_out_b, n_labels);
        std::vector<float> p = logits;
        kernels::softmax(p.data(), n_labels);
        r.logits.push_back(std::move(logits));
        r.probs.push_back(std::move(p));
    }
    return r;
}

}  // namespace edgellm::engine
