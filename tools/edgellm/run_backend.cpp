// `edgellm run --backend X`: load, stream one generation to stdout, summary to stderr (or JSON).
#include "run_backend.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "backends/backend.h"
#include "core/error.h"
#include "core/units.h"

namespace edgellm::cli {

void run_with_backend(const backend_run_options& o) {
    const auto& info = backends::find_backend(o.backend);
    auto b = info.create();
    backends::backend_settings s;
    s.model = o.model;
    s.base_url = o.url;
    s.n_threads = o.n_threads;
    s.n_ctx = o.n_ctx;
    s.n_batch = o.n_batch;
    s.n_gpu_layers = o.n_gpu_layers;
    s.timeout_s = o.timeout_s;
    s.extra = o.extra;
    // Load first and ask why only when that fails: a Python worker's availability check imports
    // its packages in a process of its own (torch: seconds), which a successful load makes moot.
    try {
        b->load(s);
    } catch (const error&) {
        const auto avail = b->check_available(s);
        if (!avail.available)
            throw error(fmt::format("backend '{}' is not available: {}{}", info.name, avail.reason,
                                    avail.hint.empty() ? "" : "\n  how to get it: " + avail.hint));
        throw;
    }

    backends::generation_request req;
    if (o.chat) {
        if (!o.system.empty()) req.messages.push_back({"system", o.system});
        req.messages.push_back({"user", o.prompt});
    } else {
        req.prompt = o.prompt;
    }
    req.n_predict = o.n_predict;
    req.temperature = o.temperature;
    req.top_k = o.top_k;
    req.top_p = o.top_p;
    req.min_p = o.min_p;
    req.repeat_penalty = o.repeat_penalty;
    req.seed = o.seed;
    auto r = b->generate(req, [&](std::string_view piece) {
        if (!o.json) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
        }
        return true;
    });
    const auto& st = r.stats;
    if (o.json) {
        // What the backend could not tell is null, never a made-up 0.
        auto known = [](double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
        nlohmann::json j = {{"backend", info.name},
                            {"model", o.model},
                            {"load_ms", b->load_ms()},
                            {"n_prompt", st.n_prompt_tokens >= 0 ? nlohmann::json(st.n_prompt_tokens) : nullptr},
                            {"ttft_ms", st.ttft_ms},
                            {"prefill_tokens_per_s", known(st.prefill_tokens_per_s)},
                            {"n_gen", st.n_gen_tokens},
                            {"n_gen_estimated", st.n_gen_tokens_estimated},
                            {"decode_tokens_per_s", known(st.decode_tokens_per_s)},
                            {"total_ms", st.total_ms},
                            {"finish_reason", r.finish_reason},
                            {"text", r.text}};
        if (!r.prompt_tokens.empty()) j["prompt_tokens"] = r.prompt_tokens;
        if (!r.tokens.empty()) j["tokens"] = r.tokens;
        if (st.backend_prompt_ms) j["backend_prompt_ms"] = *st.backend_prompt_ms;
        if (st.backend_decode_ms) j["backend_decode_ms"] = *st.backend_decode_ms;
        if (st.server_prefill_tokens_per_s) j["server_prefill_tokens_per_s"] = *st.server_prefill_tokens_per_s;
        if (st.server_decode_tokens_per_s) j["server_decode_tokens_per_s"] = *st.server_decode_tokens_per_s;
        if (st.backend_memory_bytes) j["backend_memory_bytes"] = *st.backend_memory_bytes;
        if (st.backend_gpu_memory_bytes) j["backend_gpu_memory_bytes"] = *st.backend_gpu_memory_bytes;
        // Generated text may end inside a multi-byte character (byte tokens): replace, never throw.
        std::puts(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
        std::fputs("\n", stdout);
        std::fflush(stdout);
        std::string mem;
        if (st.backend_memory_bytes) mem += fmt::format("memory (backend-reported): {}", format_bytes(*st.backend_memory_bytes));
        if (st.backend_gpu_memory_bytes) mem += fmt::format(", GPU {}", format_bytes(*st.backend_gpu_memory_bytes));
        const std::string prompt =
            st.n_prompt_tokens >= 0 && st.prefill_tokens_per_s > 0
                ? fmt::format("{} tokens, time to first token {:.1f} ms, {:.2f} tokens/s", st.n_prompt_tokens,
                              st.ttft_ms, st.prefill_tokens_per_s)
            : st.n_prompt_tokens >= 0
                ? fmt::format("{} tokens, time to first token {:.1f} ms", st.n_prompt_tokens, st.ttft_ms)
                : fmt::format("size not reported by the backend, time to first token {:.1f} ms", st.ttft_ms);
        const std::string rate = st.decode_tokens_per_s > 0 ? fmt::format(", {:.2f} tokens/s", st.decode_tokens_per_s) : "";
        const std::string generated =
            st.n_gen_tokens_estimated
                ? fmt::format("~{} tokens (counted from streamed pieces: an estimate){}", st.n_gen_tokens, rate)
                : fmt::format("{} tokens{}", st.n_gen_tokens, rate);
        std::fprintf(stderr, "%s",
                     fmt::format("\nbackend: {} ({})\nload: {:.1f} ms\nprompt: {}\n"
                                 "generated: {}, total {:.1f} ms, finish: {}\n{}",
                                 info.name, b->description(), b->load_ms(), prompt, generated, st.total_ms,
                                 r.finish_reason, mem.empty() ? "" : mem + "\n")
                         .c_str());
    }
    b->unload();
}

}  // namespace edgellm::cli
