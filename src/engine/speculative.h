// Speculative decoding: a small draft model proposes up to draft_max tokens one by one, the
// target model scores all of them in one batched forward pass, and standard rejection sampling
// (Leviathan et al. / Chen et al.) keeps a prefix of them plus one token of its own. The output
// has exactly the target's distribution; at temperature 0 it is token for token the target's
// greedy output. Rejected positions are rolled back from both KV caches.
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

// Generates on KV slot 0 of `target` with `draft` proposing (both sessions are cleared first
// and after). Same contract and stop rules as engine::generate; the stats also carry the
// drafted and accepted token counts. Throws usage_error when the two models' vocabularies
// differ, for penalties (not supported with drafting), and for the engine's usual bad requests.
generation_stats generate_speculative(engine& target, engine& draft, std::span<const int32_t> prompt,
                                      const generation_params& gp, const token_callback& on_token,
                                      const speculative_params& sp);

// Refuses (usage_error) draft lengths out of range (--draft-max >= 1, 0 <= --draft-min <= max).
void check_speculative_params(const speculative_params& sp);
// Refuses (usage_error) what speculative decoding does not support: penalties.
void check_speculative_request(const generation_params& gp);

// generate_speculative as a scheduler's exclusive runner (the server with --model-draft): each
// request runs on target and draft alone; the result carries the drafted / accepted counts.
exclusive_runner speculative_runner(engine& target, engine& draft, const speculative_params& sp);

}  // namespace edgellm::engine
