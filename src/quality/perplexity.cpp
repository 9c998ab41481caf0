// llama-perplexity's chunked perplexity on the native engine (see perplexity.h).
#include "quality/perplexity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/timing.h"

namespace edgellm::quality {

double log_sum_exp(std::span<const float> logits) {
    float max_l = -INFINITY;
    for (float l : logits) max_l = std::max(max_l, l);
    double sum = 0;
    for (float l : logits) sum += std::exp(static_cast<double>(l) - max_l);
    return max_l + std::log(sum);
}

perplexity_result perplexity(engine::engine& eng, std::span<const int32_t> tokens, int32_t bos, int n_chunks_max,
                             const std::function<void(int, double)>& on_chunk,
                             const std::function<void(int, std::span<const float>)>& on_logits) {
    const int64_t n_ctx = eng.params().n_ctx;
    const int64_t n_vocab = eng.hparams().n_vocab;
    perplexity_result r;
    r.n_tokens = static_cast<int64_t>(tokens.size());
    if (r.n_tokens < 2 * n_ctx)
        throw usage_error(fmt::format("the text has {} tokens; perplexity with a context of {} needs at least {} "
                                      "(two chunks: give more text or a smaller -c)",
                                      r.n_tokens, n_ctx, 2 * n_ctx));
    int n_chunks = static_cast<int>(r.n_tokens / n_ctx);
    if (n_chunks_max >= 0) n_chunks = std::min(n_chunks, n_chunks_max);
    const int64_t first = n_ctx / 2;
    double nll = 0, nll2 = 0;
    model::kv_cache& kv = eng.kv_mut();
    stopwatch sw;
    for (int c = 0; c < n_chunks; ++c) {
        const size_t start = static_cast<size_t>(c) * static_cast<size_t>(n_ctx);
        model::batch b;
        for (int64_t i = 0; i < n_ctx; ++i) {
            int32_t t = tokens[start + static_cast<size_t>(i)];
            if (i == 0 && bos >= 0) t = bos;  // every chunk starts as a fresh text
            b.add(t, i, 0, i >= first);
        }
        kv.clear(0);
        std::span<const float> logits = eng.forward().eval(kv, b);
        // Row k of the returned logits is position first + k; it predicts the token after it.
        for (int64_t i = first; i + 1 < n_ctx; ++i) {
            std::span<const float> row = logits.subspan(static_cast<size_t>((i - first) * n_vocab),
                                                        static_cast<size_t>(n_vocab));
            const double lp = row[static_cast<size_t>(tokens[start + static_cast<size_t>(i) + 1])] - log_sum_exp(row);
            nll -= lp;
            nll2 += lp * lp;
            ++r.n_scored;
        }
        if (on_logits) on_logits(c, logits.first(static_cast<size_t>((n_ctx - 1 - first) * n_vocab)));
        ++r.n_chunks;
        r.chunk_ppl.push_back(std::exp(nll / static_cast<double>(r.n_scored)));
        if (on_chunk) on_chunk(c, r.chunk_ppl.back());
    }
    kv.clear(0);
    r.eval_ms = sw.elapsed_ms();
    const double mean = nll / static_cast<double>(r.n_scored);
    r.ppl = std::exp(mean);
    const double var = nll2 / static_cast<double>(r.n_scored) - mean * mean;
    if (var > 0 && r.n_scored > 1) r.ppl_stderr = std::sqrt(var / static_cast<double>(r.n_scored - 1)) * r.ppl;
    return r;
}

}  // namespace edgellm::quality
