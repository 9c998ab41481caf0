// Batched generation loop: one forward pass over all prompts, then one pass per step holding
// the next token of every sequence that is still generating.
#include "engine/batch_generate.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/timing.h"

namespace edgellm::engine {

batch_generation_stats generate_batch(engine& e, std::span<const std::vector<int32_t>> prompts,
                                      const generation_params& gp) {
    if (prompts.empty()) throw usage_error("batched generation needs at least one prompt");
    if (gp.n_predict <= 0)
        throw usage_error(
            fmt::format("the number of tokens to generate must be positive, got {}", gp.n_predict));
    model::kv_cache& kv = e.kv_mut();
    if (static_cast<int64_t>(prompts.size()) > kv.n_seq())
        throw usage_error(fmt::format(
            "{} sequences requested but the engine's KV cache holds {} (engine_params.n_seq)",
            prompts.size(), kv.n_seq()));
    const model::model_hparams& hp = e.hparams();
    const size_t n_vocab = static_cast<size_t>(hp.n_vocab);
    const size_t n_seq = prompts.size();
    for (size_t s = 0; s < n_seq; ++s) {
        const auto& p = prompts[s];
        if (p.empty()) throw usage_error(fmt::format("prompt {} of the batch is empty", s));
        if (static_cast<int64_t>(p.size()) >= kv.n_ctx())
            throw usage_error(fmt::format("prompt {} has {} tokens but the context holds only {}",
                                          s, p.size(), kv.n_ctx()));
        for (int32_t t : p)
            if (t < 0 || t >= hp.n_vocab)
                throw usage_error(fmt::format("prompt {}: token {} is outside the vocabulary of {}",
                                              s, t, hp.n_vocab));
    }

    batch_generation_stats st;
    st.sequences.resize(n_seq);
    std::vector<sampling::sampler_chain> chains;
    chains.reserve(n_seq);
    model::batch b;
    for (size_t s = 0; s < n_seq; ++s) {
        kv.clear(static_cast<int>(s));
        chains.push_back(sampling::sampler_chain::from_params(gp.sampling));
        for (int32_t t : prompts[s]) chains.back().accept(t);
        for (size_t i = 0; i < prompts[s].size(); ++i)
            b.add(prompts[s][i], static_cast<int64_t>(i), static_cast<int32_t>(s),
                  i + 1 == prompts[s].size());
        st.n_prompt += static_cast<int64_t>(prompts[s].size());
    }

    stopwatch total;
    stopwatch sw;
    std::span<const float> logits = e.forward().eval(kv, b);
    st.prefill_ms = sw.elapsed_ms();

    // Logits of the last step, one row per sequence listed in `rows` (the live ones, in order).
    std::vector<float> last(logits.begin(), logits.end());
    std::vector<size_t> rows(n_seq);
    for (size_t s = 0; s < n_seq; ++s) rows[s] = s;
    for (;;) {
        std::vector<size_t> next;
        b.clear();
        for (size_t r = 0; r < rows.size(); ++r) {
            const size_t s = rows[r];
            batch_sequence_result& out = st.sequences[s];
            std::span<const float> row(last.data() + r * n_vocab, n_vocab);
            const int32_t tok = chains[s].sample(row);
            const bool eog = hp.is_end_of_generation(tok) ||
                             std::find(gp.extra_eog_ids.begin(), gp.extra_eog_ids.end(), tok) !=
                                 gp.extra_eog_ids.end();
            const double t_ms = total.elapsed_ms();
            if (out.tokens.empty()) out.first_token_ms = t_ms;
            out.latency_ms = t_ms;
            if (!gp.ignore_eos && eog) {
                out.stop_reason = "eos";
                continue;
            }
            chains[s].accept(tok);
            out.tokens.push_back(tok);
            if (static_cast<int>(out.tokens.size()) >= gp.n_predict) {
                out.stop_reason = "length";
                continue;
            }
            const int64_t pos = kv.seq_len(static_cast<int>(s));
            if (pos >= kv.n_ctx()) {
                out.stop_reason = "context";
                continue;
            }
            b.add(tok, pos, static_cast<int32_t>(s), true);
            next.push_back(s);
        }
        if (next.empty()) break;
        sw.reset();
        logits = e.forward().eval(kv, b);
        st.decode_ms += sw.elapsed_ms();
        ++st.n_decode_steps;
        last.assign(logits.begin(), logits.end());
        rows = std::move(next);
    }
    st.wall_ms = total.elapsed_ms();
    for (const auto& s : st.sequences) st.n_gen += static_cast<int64_t>(s.tokens.size());
    return st;
}

}  // namespace edgellm::engine
