// Reading llama-server's streamed messages as the versions people run spell them: `/completion`
// (final message `stop: true` with `stop_type`, or the older `stopped_eos/limit/word` flags;
// `tokens_predicted`/`tokens_evaluated`) and `/v1/chat/completions` (OpenAI chunks, `usage`
// when asked or always in older versions), each with the server's `timings` where it sends them.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace edgellm::backends {

// llama-server's own `timings` object. Field meanings differ across versions: newer servers
// (2025+) time predicted_ms from the end of the prompt, so the first token is free and their
// predicted_per_second is (predicted_n - 1) / predicted_ms; older ones divide predicted_n by it.
struct llama_server_timings {
    std::optional<int64_t> prompt_n;     // prompt tokens processed (newer: excluding cache_n)
    std::optional<int64_t> cache_n;      // prompt tokens reused from the cache (newer only)
    std::optional<double> prompt_ms;
    std::optional<double> prompt_per_second;
    std::optional<int64_t> predicted_n;  // generated tokens
    std::optional<double> predicted_ms;
    std::optional<double> predicted_per_second;
};

// Parses a `timings` object; fields that are absent, null or not numbers stay empty.
llama_server_timings parse_llama_server_timings(const nlohmann::json& t);

// The server's own prefill / decode speed, as it computes it (its *_per_second when sent and
// positive, else from n / ms); nullopt where there is nothing meaningful: no prompt time, or
// fewer than 2 generated tokens (one token has no decode interval, whatever the server says).
std::optional<double> server_prefill_tokens_per_s(const llama_server_timings& t);
std::optional<double> server_decode_tokens_per_s(const llama_server_timings& t);

// One streamed message of either endpoint.
struct llama_server_event {
    std::string content;            // text piece (may be empty)
    bool final = false;             // /completion `stop: true`, or a chat chunk with a finish_reason
    std::string finish_reason;      // "stop" | "length" | "" (not said)
    std::optional<int64_t> n_prompt_tokens;  // tokens_evaluated / usage.prompt_tokens
    std::optional<int64_t> n_gen_tokens;     // tokens_predicted / usage.completion_tokens
    std::optional<llama_server_timings> timings;
    std::string error;  // the server's error message, when the message is an error
};

// `chat`: the message is an OpenAI chat chunk (from /v1/chat/completions), else /completion's.
llama_server_event parse_llama_server_event(const nlohmann::json& j, bool chat);

}  // namespace edgellm::backends
