// Perplexity as llama.cpp's llama-perplexity measures it: the text is tokenized once (BOS first
// when the model adds one), cut into chunks of n_ctx tokens, each chunk is evaluated from an
// empty cache with its first token replaced by BOS, and the second half of each chunk is scored
// (the negative log-likelihood of every token given the ones before it in the chunk).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/engine.h"

namespace edgellm::quality {

struct perplexity_result {
    int64_t n_tokens = 0;       // tokens of the whole text
    int n_chunks = 0;           // chunks evaluated
    int64_t n_scored = 0;       // tokens scored
    double ppl = 0;             // exp(mean NLL)
    double ppl_stderr = 0;      // standard error of the PPL estimate (llama.cpp's "+/-")
    std::vector<double> chunk_ppl;  // running estimate after each chunk
    double eval_ms = 0;
};

// Scores `tokens` with the session (its n_ctx is the chunk size, its n_batch the step size).
// n_chunks_max < 0: every whole chunk. `on_chunk(i, running_ppl)` is called after each chunk.
// Throws usage_error when the text has fewer than 2 * n_ctx tokens (as llama-perplexity).
// `on_logits(i, rows)`, when set, receives chunk i's scored rows: [n_ctx - 1 - n_ctx/2][n_vocab]
// logits, row k predicting token n_ctx/2 + k + 1 of the chunk (KL divergence uses them).
perplexity_result perplexity(engine::engine& eng, std::span<const int32_t> tokens, int32_t bos, int n_chunks_max = -1,
                             const std::function<void(int, double)>& on_chunk = {},
                             const std::function<void(int, std::span<const float>)>& on_logits = {});

// log(sum(exp(logits))) in double with the max subtracted: log p(i) = logits[i] - log_sum_exp.
double log_sum_exp(std::span<const float> logits);

}  // namespace edgellm::quality
