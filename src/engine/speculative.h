// Speculative decoding with a draft model, inside the scheduler: a small model with the same
// vocabulary proposes up to draft_max tokens for every decoding sequence (batched over them,
// make_model_drafter), the target evaluates them with everyone's tokens in one forward pass, and
// the scheduler keeps drafts while they equal what the sequence's sampler picks (scheduler.h),
// so the output is plain decoding's. accept_drafts is the rejection-sampling rule (Leviathan et
// al. / Chen et al.) that keeps more drafts at temperature > 0 from the draft's distributions;
// the scheduler does not use it yet (its drafts are greedy picks).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/engine.h"
#include "sampling/sampler.h"

namespace edgellm::engine {

struct speculative_params {
    int draft_max = 16;  // tokens the draft proposes per round
    int draft_min = 0;   // rounds that could draft fewer tokens than this decode plainly instead
};

// One verification: p_rows[i] is the target's distribution after the i-th draft token's prefix
// (k + 1 rows for k drafts), q_rows[i] the draft's distribution drafts[i] was drawn from.
// Accepts drafts[i] with probability min(1, p(d)/q(d)); at the first rejection the next token
// is drawn from max(0, p - q) renormalised; when all are accepted it is drawn from p_rows[k].
struct acceptance {
    int n_accepted = 0;
    int32_t next = -1;
};
acceptance accept_drafts(std::span<const std::vector<float>> p_rows, std::span<const std::vector<float>> q_rows,
                         std::span<const int32_t> drafts, sampling::rng& r);

// Opens the draft model's session with the target's parameters `p` (threads, batch, KV type) and
// context `target_ctx`, capped at the draft's own trained maximum (drafting stops beyond it).
std::unique_ptr<engine> open_draft(const engine_params& p, const std::string& draft_path, int64_t target_ctx);

// Refuses (usage_error) draft lengths out of range (--draft-max >= 1, 0 <= --draft-min <= max).
void check_speculative_params(const speculative_params& sp);
// Makes target's generate() and schedulers draft with `draft` (make_model_drafter), up to
// sp.draft_max tokens per step; usage_error for bad draft lengths or another vocabulary.
void use_draft_model(engine& target, engine& draft, const speculative_params& sp);

// A draft model as the scheduler's draft_source (serve --model-draft, any --parallel): `draft`
// must hold as many sequences as the target's scheduler has slots (open_draft with the target's
// parameters). Each step it catches every drafting sequence's KV up with its history in one
// batched pass, then drafts one token per sequence per pass (greedy picks), all sequences
// together. usage_error when the vocabularies differ.
std::shared_ptr<draft_source> make_model_drafter(const engine& target, engine& draft);

}  // namespace edgellm::engine
