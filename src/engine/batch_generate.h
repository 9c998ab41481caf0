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

struct batch_sequence_result {
    std::vector<int32_t>
        tokens;  // generated ids (an EOS/EOT that ended the sequence is not included)
    double first_token_ms = 0;  // batch start -> this sequence's first token picked
    double latency_ms = 0;      // batch start -> this sequence's last token picked
    std::string stop_reason;    // "eos" | "length" | "context"
};

struct batch_generation_stats {
    std::vector<batch_sequence_result> sequences;  // in prompt order
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
