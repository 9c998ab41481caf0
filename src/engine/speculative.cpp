// Speculative decoding over two engine sessions (see speculative.h).
#include "engine/speculative.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "core/timing.h"
#include "gguf/gguf.h"
#include "model/forward.h"

namespace edgellm::engine {

acceptance accept_drafts(std::span<const std::vector<float>> p_rows, std::span<const std::vector<float>> q_rows,
                         std::span<const int32_t> drafts, sampling::rng& r) {
    if (p_rows.size() != drafts.size() + 1 || q_rows.size() != drafts.size())
        throw error("accept_drafts: need k + 1 target rows and k draft rows for k drafts");
    acceptance a;
    for (size_t i = 0; i < drafts.size(); ++i) {
        const auto d = static_cast<size_t>(drafts[i]);
        const double p = p_rows[i][d], q = q_rows[i][d];
        // q > 0 always holds for a token drawn from q; p >= q accepts without drawing, so
        // one-hot (greedy) rows never consume random numbers.
        if (p >= q || r.uniform01() * q < p) {
            ++a.n_accepted;
            continue;
        }
        std::vector<float> residual(p_rows[i].size());
        double total = 0;
        for (size_t t = 0; t < residual.size(); ++t) {
            residual[t] = std::max(0.0f, p_rows[i][t] - q_rows[i][t]);
            total += residual[t];
        }
        // p == q up to rounding everywhere would leave nothing: fall back to p itself.
        a.next = total > 0 ? sampling::pick(residual, r) : sampling::pick(p_rows[i], r);
        return a;
    }
    a.next = sampling::pick(p_rows[drafts.size()], r);
    return a;
}

namespace {

void check_same_vocab(const engine& target, const engine& draft) {
    const auto& ft = target.get_model().file();
    const auto& fd = draft.get_model().file();
    const int64_t nt = target.hparams().n_vocab, nd = draft.hparams().n_vocab;
    if (nt != nd)
        throw usage_error(fmt::format("the draft model's vocabulary ({} tokens) differs from the target's ({}): "
                                      "speculative decoding needs the same tokenizer",
                                      nd, nt));
    const auto* at = ft.find("tokenizer.ggml.tokens");
    const auto* ad = fd.find("tokenizer.ggml.tokens");
    if (!at || !ad) return;  // sizes agree; nothing more to compare
    const auto& xt = at->as_array().items;
    const auto& xd = ad->as_array().items;
    for (size_t i = 0; i < std::min(xt.size(), xd.size()); ++i)
        if (xt[i].as_string() != xd[i].as_string())
            throw usage_error(fmt::format("the draft model's token {} is '{}' but the target's is '{}': speculative "
                                          "decoding needs the same tokenizer",
                                          i, xd[i].as_string(), xt[i].as_string()));
}

// Evaluates tokens[from..] on slot 0 (positions continue the cache) and returns the logits of
// the last `n_out` entries (n_out <= tokens.size() - from), [n_out][n_vocab].
std::span<const float> eval_tail(engine& e, std::span<const int32_t> tokens, size_t from, size_t n_out) {
    model::batch b;
    for (size_t i = from; i < tokens.size(); ++i)
        b.add(tokens[i], static_cast<int64_t>(i), 0, i + n_out >= tokens.size());
    return e.forward().eval(e.kv_mut(), b);
}

}  // namespace

std::unique_ptr<engine> open_draft(const engine_params& p, const std::string& draft_path, int64_t target_ctx) {
    engine_params dp = p;
    dp.model_path = draft_path;
    auto lm = load_model_for(dp, [target_ctx](engine_params& e, const model::model_hparams& hp) {
        e.n_ctx = std::min(target_ctx, hp.n_ctx_train);
    });
    return std::make_unique<engine>(lm, dp);
}

generation_stats generate_speculative(engine& target, engine& draft, std::span<const int32_t> prompt,
                                      const generation_params& gp, const token_callback& on_token,
                                      const speculative_params& sp) {
    if (gp.n_predict <= 0)
        throw usage_error(fmt::format("the number of tokens to generate must be positive, got {}", gp.n_predict));
    check_speculative_params(sp);
    check_speculative_request(gp);
    const auto& s = gp.sampling;
    sampling::validate(s);
    check_same_vocab(target, draft);
    target.check_prompt(prompt);
    const int64_t n_ctx = target.kv().n_ctx();
    const int64_t draft_ctx = draft.kv().n_ctx();  // may be shorter: no drafting past it

    generation_stats st;
    st.load_ms = target.load_ms() + draft.load_ms();
    st.kv_bytes = target.kv().size_bytes() + draft.kv().size_bytes();
    st.model_bytes = target.get_model().file().file_size() + draft.get_model().file().file_size();
    st.n_prompt = static_cast<int64_t>(prompt.size());
    const size_t n_vocab = static_cast<size_t>(target.hparams().n_vocab);
    target.kv_mut().clear(0);
    draft.kv_mut().clear(0);
    sampling::rng rng(s.seed);
    auto is_eog = [&](int32_t t) {
        if (gp.ignore_eos) return false;
        return target.shared_model()->is_eog(t) ||
               std::find(gp.extra_eog_ids.begin(), gp.extra_eog_ids.end(), t) != gp.extra_eog_ids.end();
    };
    auto dist = [&](std::span<const float> logits, size_t row) {
        return sampling::distribution(logits.subspan(row * n_vocab, n_vocab), s);
    };

    std::vector<int32_t> tokens(prompt.begin(), prompt.end());
    stopwatch total;
    // Emits one token; false when generation ends (stop_reason set).
    auto emit = [&](int32_t tok) {
        if (is_eog(tok)) {
            st.stop_reason = "eos";
            return false;
        }
        tokens.push_back(tok);
        ++st.n_gen;
        if (st.n_gen == 1) st.ttft_ms = total.elapsed_ms();
        if (on_token && !on_token(tok)) {
            st.stop_reason = "cancelled";
            return false;
        }
        if (st.n_gen >= gp.n_predict) {
            st.stop_reason = "length";
            return false;
        }
        // As the plain loop: stop once the evaluated tokens (all but this one) fill the context.
        if (static_cast<int64_t>(tokens.size()) - 1 >= n_ctx) {
            st.stop_reason = "context";
            return false;
        }
        return true;
    };

    try {
        // Prefill: the target's last row picks the first token; the draft only fills its cache.
        stopwatch sw;
        std::span<const float> lt = eval_tail(target, tokens, 0, 1);
        st.prefill_ms = sw.elapsed_ms();
        bool going = emit(sampling::pick(dist(lt, 0), rng));
        size_t n_draft_kv = 0;
        stopwatch decode;
        while (going) {
            const int64_t room = n_ctx - static_cast<int64_t>(tokens.size());
            const int64_t left = gp.n_predict - st.n_gen;
            // The draft caches tokens.size() + k - 1 positions while proposing k tokens.
            const int64_t draft_room = draft_ctx + 1 - static_cast<int64_t>(tokens.size());
            int k = static_cast<int>(std::min<int64_t>({sp.draft_max, left - 1, room, draft_room}));
            if (k < std::max(1, sp.draft_min)) k = 0;
            // Draft: catch its cache up with the accepted tokens, then propose k tokens.
            std::vector<int32_t> drafts;
            std::vector<std::vector<float>> q_rows;
            if (k > 0) {
                std::vector<int32_t> seq = tokens;
                for (int j = 0; j < k; ++j) {
                    std::span<const float> ld = eval_tail(draft, seq, n_draft_kv, 1);
                    n_draft_kv = seq.size();
                    q_rows.push_back(dist(ld, 0));
                    const int32_t d = sampling::pick(q_rows.back(), rng);
                    drafts.push_back(d);
                    seq.push_back(d);
                }
            }
            // Target: the pending token and every draft in one pass, k + 1 rows of logits.
            std::vector<int32_t> verify = tokens;
            verify.insert(verify.end(), drafts.begin(), drafts.end());
            const size_t n_target_kv = tokens.size() - 1;
            std::span<const float> lv = eval_tail(target, verify, n_target_kv, drafts.size() + 1);
            std::vector<std::vector<float>> p_rows;
            for (size_t i = 0; i <= drafts.size(); ++i) p_rows.push_back(dist(lv, i));
            const acceptance a = accept_drafts(p_rows, q_rows, drafts, rng);
            ++st.n_rounds;
            st.n_drafted += static_cast<int64_t>(drafts.size());
            st.n_accepted += a.n_accepted;
            // Keep the accepted prefix in both caches; the new pending token is in neither.
            const size_t keep = tokens.size() + static_cast<size_t>(a.n_accepted);
            target.kv_mut().truncate(0, static_cast<int64_t>(keep));
            n_draft_kv = std::min(n_draft_kv, keep);
            draft.kv_mut().truncate(0, static_cast<int64_t>(n_draft_kv));
            for (int i = 0; i < a.n_accepted && going; ++i) going = emit(drafts[static_cast<size_t>(i)]);
            if (going) going = emit(a.next);
        }
        st.decode_ms = decode.elapsed_ms();
        st.n_decode = st.n_rounds;
    } catch (...) {
        target.kv_mut().clear(0);
        draft.kv_mut().clear(0);
        throw;
    }
    target.kv_mut().clear(0);
    draft.kv_mut().clear(0);
    if (st.prefill_ms > 0) st.prefill_tokens_per_s = 1000.0 * static_cast<double>(st.n_prompt) / st.prefill_ms;
    // Tokens after the first, per second of the decode loop (drafting included).
    if (st.decode_ms > 0 && st.n_gen > 1)
        st.decode_tokens_per_s = 1000.0 * static_cast<double>(st.n_gen - 1) / st.decode_ms;
    st.peak_rss_bytes = peak_rss_bytes();
    return st;
}

void check_speculative_params(const speculative_params& sp) {
    if (sp.draft_max < 1) throw usage_error(fmt::format("--draft-max must be at least 1, got {}", sp.draft_max));
    if (sp.draft_min < 0 || sp.draft_min > sp.draft_max)
        throw usage_error(fmt::format("--draft-min must be in [0, --draft-max], got {}", sp.draft_min));
}

void check_speculative_request(const generation_params& gp) {
    const auto& s = gp.sampling;
    if (s.repeat_penalty != 1.0f || s.frequency_penalty != 0.0f || s.presence_penalty != 0.0f)
        throw usage_error("repetition / frequency / presence penalties are not supported with a draft model");
}

exclusive_runner speculative_runner(engine& target, engine& draft, const speculative_params& sp) {
    check_speculative_params(sp);
    check_same_vocab(target, draft);
    exclusive_runner ex;
    ex.check = [](const request& r) { check_speculative_request(r.gp); };
    ex.run = [&target, &draft, sp](const request& r, const std::function<bool(int32_t)>& on_token) {
        sequence_result res;
        const generation_stats st = generate_speculative(target, draft, r.prompt, r.gp, [&](int32_t tok) {
            res.tokens.push_back(tok);
            return on_token(tok);
        }, sp);
        res.n_prompt = st.n_prompt;
        res.prefill_ms = st.prefill_ms;
        res.decode_ms = st.decode_ms;
        res.n_decode = st.n_decode;
        res.sample_ms = st.sample_ms;
        res.first_token_ms = st.ttft_ms;
        res.n_kv = st.n_prompt + st.n_gen;
        res.stop_reason = st.stop_reason;
        res.n_drafted = st.n_drafted;
        res.n_accepted = st.n_accepted;
        return res;
    };
    return ex;
}

}  // namespace edgellm::engine
