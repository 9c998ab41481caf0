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

}  // namespace

std::unique_ptr<engine> open_draft(const engine_params& p, const std::string& draft_path, int64_t target_ctx) {
    engine_params dp = p;
    dp.model_path = draft_path;
    auto lm = load_model_for(dp, [target_ctx](engine_params& e, const model::model_hparams& hp) {
        e.n_ctx = std::min(target_ctx, hp.n_ctx_train);
    });
    return std::make_unique<engine>(lm, dp);
}

void check_speculative_params(const speculative_params& sp) {
    if (sp.draft_max < 1) throw usage_error(fmt::format("--draft-max must be at least 1, got {}", sp.draft_max));
    if (sp.draft_min < 0 || sp.draft_min > sp.draft_max)
        throw usage_error(fmt::format("--draft-min must be in [0, --draft-max], got {}", sp.draft_min));
}

namespace {

class model_drafter final : public draft_source {
public:
    explicit model_drafter(engine& d) : d_(d), held_(static_cast<size_t>(d.kv().n_seq())) {}

    std::vector<std::vector<int32_t>> propose(std::span<const want> wants) override {
        model::kv_cache& kv = d_.kv_mut();
        const size_t n_vocab = static_cast<size_t>(d_.hparams().n_vocab);
        std::vector<std::vector<int32_t>> out(wants.size());
        std::vector<int> room(wants.size(), 0);
        std::vector<size_t> active;
        model::batch b;
        // Catch-up: each sequence's tokens the draft's cache lacks (at least its last one, whose
        // logits give the first draft).
        for (size_t i = 0; i < wants.size(); ++i) {
            const want& w = wants[i];
            if (w.slot < 0 || w.slot >= kv.n_seq() || w.tokens.empty()) continue;
            room[i] = static_cast<int>(std::min<int64_t>(w.max, kv.n_ctx() - static_cast<int64_t>(w.tokens.size())));
            if (room[i] <= 0) continue;
            auto& h = held_[static_cast<size_t>(w.slot)];
            size_t common = 0;
            const size_t lim = std::min({h.size(), static_cast<size_t>(kv.seq_len(w.slot)), w.tokens.size() - 1});
            while (common < lim && h[common] == w.tokens[common]) ++common;
            // A window-sized cache may not roll back that far: then the draft starts over.
            if (!kv.can_truncate(w.slot, static_cast<int64_t>(common))) common = 0;
            kv.truncate(w.slot, static_cast<int64_t>(common));
            h.assign(w.tokens.begin(), w.tokens.end());
            for (size_t p = common; p < w.tokens.size(); ++p)
                b.add(w.tokens[p], static_cast<int64_t>(p), w.slot, p + 1 == w.tokens.size());
            active.push_back(i);
        }
        try {
            while (!active.empty()) {
                std::span<const float> logits = d_.forward().eval(kv, b);
                b.clear();
                std::vector<size_t> next;
                for (size_t r = 0; r < active.size(); ++r) {
                    const size_t i = active[r];
                    const auto row = logits.subspan(r * n_vocab, n_vocab);
                    const int32_t t = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
                    out[i].push_back(t);
                    if (static_cast<int>(out[i].size()) >= room[i]) continue;
                    auto& h = held_[static_cast<size_t>(wants[i].slot)];
                    b.add(t, static_cast<int64_t>(h.size()), wants[i].slot, true);
                    h.push_back(t);
                    next.push_back(i);
                }
                active = std::move(next);
            }
        } catch (const std::exception&) {
            // The draft's pool ran short (or the pass failed): no drafts this step, caches reset.
            for (const want& w : wants) release(w.slot);
            return std::vector<std::vector<int32_t>>(wants.size());
        }
        return out;
    }

    void release(int slot) override {
        if (slot < 0 || slot >= d_.kv().n_seq()) return;
        d_.kv_mut().clear(slot);
        held_[static_cast<size_t>(slot)].clear();
    }

private:
    engine& d_;
    std::vector<std::vector<int32_t>> held_;  // [slot] the tokens the draft's KV holds (a prefix)
};

}  // namespace

std::shared_ptr<draft_source> make_model_drafter(const engine& target, engine& draft) {
    check_same_vocab(target, draft);
    if (draft.kv().n_seq() < target.kv().n_seq())
        throw usage_error(fmt::format("the draft model's session holds {} sequences, the target's {}",
                                      draft.kv().n_seq(), target.kv().n_seq()));
    draft.kv_mut().set_prefix_caching(false);  // its sequences follow the target's; nothing to share
    return std::make_shared<model_drafter>(draft);
}

void use_draft_model(engine& target, engine& draft, const speculative_params& sp) {
    check_speculative_params(sp);
    target.set_speculation({0, sp.draft_max, std::max(1, sp.draft_min), make_model_drafter(target, draft)});
}

}  // namespace edgellm::engine
