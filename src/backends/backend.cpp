// Client-side measurement shared by every backend.
#include "backends/backend.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"
#include "core/timing.h"

namespace edgellm::backends {

embed_stats backend::embed(const std::vector<std::string>&) {
    throw usage_error(fmt::format("backend {} does not support embeddings (native and llama_cpp_python do)",
                                  name()));
}

generation_result backend::generate(const generation_request& req, const token_callback& on_piece,
                                    const std::atomic<bool>* cancel) {
    generation_result result;
    const double t0 = now_ms();
    double last_ms = -1;
    int64_t n_pieces = 0;
    bool cancelled = false;
    auto emit = [&](std::string_view piece) -> bool {
        if (piece.empty()) return !cancelled;
        const double t = now_ms();
        if (n_pieces == 0)
            result.stats.ttft_ms = t - t0;
        else
            result.stats.inter_token_ms.push_back(t - last_ms);
        last_ms = t;
        ++n_pieces;
        result.text.append(piece);
        if (on_piece && !on_piece(piece)) cancelled = true;
        if (cancel && cancel->load()) cancelled = true;
        return !cancelled;
    };
    try {
        do_generate(req, emit, result);
    } catch (const nlohmann::json::exception& e) {
        throw error(name() + ": unexpected response from the server (" + e.what() + ")");
    }
    auto& s = result.stats;
    s.total_ms = now_ms() - t0;
    s.n_pieces = n_pieces;
    if (cancelled) result.finish_reason = "cancelled";
    if (s.n_gen_tokens <= 0) {
        s.n_gen_tokens = n_pieces;
        s.n_gen_tokens_estimated = n_pieces > 0;
    }
    if (n_pieces == 0 && (s.n_gen_tokens > 0 || result.finish_reason == "stop")) {
        // The model ended at once (its only token was end-of-generation, which has no text): the
        // token arrived with the end of the stream.
        s.ttft_ms = s.last_piece_ms = s.total_ms;
        s.notes.push_back("ttft: no text streamed (the model ended at once), TTFT = end of the stream");
    } else if (n_pieces == 0) {
        s.ttft_ms = std::nan("");
        s.notes.push_back("ttft: nothing was generated, TTFT not measured");
    } else {
        s.last_piece_ms = last_ms - t0;
    }
    // edgellm's clock (unless the backend timed its own passes in this process: native).
    const bool own_timing = s.prefill_tokens_per_s > 0 || s.decode_tokens_per_s > 0;
    if (s.prefill_tokens_per_s <= 0 && s.n_prompt_tokens > 0 && std::isfinite(s.ttft_ms) && s.ttft_ms > 0)
        s.prefill_tokens_per_s = s.n_prompt_tokens * 1000.0 / s.ttft_ms;
    if (s.decode_tokens_per_s <= 0) {
        if (s.n_gen_tokens < 2)
            s.notes.push_back(fmt::format("decode: {} token(s) generated, no decode interval", s.n_gen_tokens));
        else if (n_pieces < 2 || s.last_piece_ms <= s.ttft_ms)
            s.notes.push_back("decode: all text arrived in one piece, no decode interval to time");
        else
            s.decode_tokens_per_s = (s.n_gen_tokens - 1) * 1000.0 / (s.last_piece_ms - s.ttft_ms);
    }
    // The backend's own figures, as an extra (native's are already the figures above).
    if (own_timing) return result;
    if (!s.server_prefill_tokens_per_s && s.backend_prompt_ms && *s.backend_prompt_ms > 0 && s.n_prompt_tokens > 0)
        s.server_prefill_tokens_per_s = s.n_prompt_tokens * 1000.0 / *s.backend_prompt_ms;
    if (!s.server_decode_tokens_per_s && s.backend_decode_ms && *s.backend_decode_ms > 0 && s.n_gen_tokens >= 2)
        s.server_decode_tokens_per_s = s.n_gen_tokens * 1000.0 / *s.backend_decode_ms;
    return result;
}

}  // namespace edgellm::backends
