// Batched generation: every prompt submitted to the engine's continuous-batching scheduler at
// once and stepped to the end, with the step times split into prefill and decode.
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
        throw usage_error(fmt::format("the number of tokens to generate must be positive, got {}", gp.n_predict));
    model::kv_cache& kv = e.kv_mut();
    if (static_cast<int64_t>(prompts.size()) > kv.n_seq())
        throw usage_error(fmt::format("{} sequences requested but the engine's KV cache holds {} (engine_params.n_seq)",
                                      prompts.size(), kv.n_seq()));
    const size_t n_seq = prompts.size();
    for (size_t s = 0; s < n_seq; ++s) {
        if (prompts[s].empty()) throw usage_error(fmt::format("prompt {} of the batch is empty", s));
        if (static_cast<int64_t>(prompts[s].size()) >= kv.n_ctx())
            throw usage_error(fmt::format("prompt {} has {} tokens but the context holds only {}", s,
                                          prompts[s].size(), kv.n_ctx()));
    }
    kv.clear_all();

    batch_generation_stats st;
    st.sequences.resize(n_seq);
    std::unique_ptr<scheduler> sched = e.make_scheduler(n_seq);
    stopwatch total;
    for (size_t s = 0; s < n_seq; ++s) {
        request r;
        r.prompt = prompts[s];
        r.gp = gp;
        r.reuse_prefix = false;  // every sweep point measures its whole prefill
        r.on_done = [&st, s](const sequence_result& out) { st.sequences[s] = out; };
        sched->submit(std::move(r));
        st.n_prompt += static_cast<int64_t>(prompts[s].size());
    }
    // Every sequence is admitted in the first step (one slot each): the steps that evaluate
    // prompt tokens are the prefill, the rest hold one token per live sequence.
    double prefill_ms = 0, decode_ms = 0;
    while (true) {
        const uint64_t before = sched->metrics().prompt_tokens;
        stopwatch sw;
        if (!sched->step()) break;
        const double ms = sw.elapsed_ms();
        if (sched->metrics().prompt_tokens != before) {
            prefill_ms += ms;
        } else {
            decode_ms += ms;
            ++st.n_decode_steps;
        }
    }
    st.wall_ms = total.elapsed_ms();
    st.prefill_ms = prefill_ms;
    st.decode_ms = decode_ms;
    for (size_t s = 0; s < n_seq; ++s) {
        const sequence_result& r = st.sequences[s];
        if (r.stop == stop_reason::error) throw error(fmt::format("sequence {}: {}", s, r.error));
        st.n_gen += static_cast<int64_t>(r.tokens.size());
    }
    return st;
}

}  // namespace edgellm::engine
