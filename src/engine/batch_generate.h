// Batched multi-sequence generation: several prompts decoded together, one forward pass per
// step with one entry per live sequence, each sequence in its own KV cache slot. Used by the
// batch-size sweep of `edgellm bench`; greedy output equals single-sequence generate().
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace edgellm::engine {

struct batch_generation_stats {
    // In prompt order, as the scheduler recorded them (every sequence is submitted at the batch's
    // start, so first_token_ms and latency_ms count from there).
    std::vector<sequence_result> sequences;
    double prefill_ms = 0;                         // the one forward pass over every prompt
    double decode_ms = 0;                          // the decode steps' forward passes
    double wall_ms = 0;                            // start -> last token of the last sequence
    int64_t n_prompt = 0;                          // prompt tokens over all sequences
    int64_t n_gen = 0;                             // generated tokens over all sequences
    int64_t n_decode_steps = 0;
};

// Generates for every prompt at once on sequences 0..n-1 of `e` (its engine_params.n_seq must
// be at least prompts.size()); those sequences are cleared first. Each sequence has its own
// sampler chain seeded from gp.sampling, so greedy results match engine::generate exactly.
// Throws usage_error for an empty prompt list, too many prompts or a prompt that does not fit.
batch_generation_stats generate_batch(engine& e, std::span<const std::vector<int32_t>> prompts,
                                      const generation_params& gp);

}  // namespace edgellm::engine
