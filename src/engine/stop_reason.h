// How a generation ended, and the one mapping of that to the names reports and the APIs use
// (OpenAI finish_reason, Ollama done_reason, `run --json` stop_reason, backend results).
#pragma once
#include <cstdint>
#include <iosfwd>

namespace edgellm::engine {

enum class stop_reason : uint8_t {
    none,         // still running
    eos,          // an end-of-generation token, or a grammar that allows nothing more
    stop_string,  // a stop string matched (found by the caller's stop filter: with_stop_string)
    length,       // the requested number of tokens was generated
    context,      // the sequence filled its context
    cancelled,    // the caller stopped it (client gone, a token callback said no, server shutdown)
    error,        // failed; sequence_result::error says why
};

// The stop reason the caller reports: stop_string when its stop filter matched (the scheduler
// saw only a callback that asked to stop), the scheduler's reason otherwise.
stop_reason with_stop_string(stop_reason r, bool stop_string_matched);

// "eos" | "stop" | "length" | "context" | "cancelled" | "error" ("none" while running): the
// engine's own name (`run --json`, chat, logs).
const char* name(stop_reason r);
std::ostream& operator<<(std::ostream& os, stop_reason r);

// OpenAI's finish_reason: "stop" (an end token or a stop string; "tool_calls" when the reply
// made tool calls), "length" (a token limit, the context, or cut short by a cancellation such as
// a server shutting down: the text is incomplete), "error" only with an error event before it.
const char* openai_finish_reason(stop_reason r, bool made_tool_calls = false);
// Ollama's done_reason: "stop" | "length" as openai_finish_reason (Ollama has no tool_calls
// reason), "error" with the record's `error` field.
const char* ollama_done_reason(stop_reason r);

}  // namespace edgellm::engine
