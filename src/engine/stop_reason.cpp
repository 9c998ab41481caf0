// The stop-reason table (see stop_reason.h): one switch per naming, so the compiler checks that
// every reason is mapped.
#include "engine/stop_reason.h"

#include <ostream>

namespace edgellm::engine {

stop_reason with_stop_string(stop_reason r, bool stop_string_matched) {
    return stop_string_matched && r != stop_reason::error ? stop_reason::stop_string : r;
}

const char* name(stop_reason r) {
    switch (r) {
        case stop_reason::none: return "none";
        case stop_reason::eos: return "eos";
        case stop_reason::stop_string: return "stop";
        case stop_reason::length: return "length";
        case stop_reason::context: return "context";
        case stop_reason::cancelled: return "cancelled";
        case stop_reason::error: return "error";
    }
    return "none";
}

std::ostream& operator<<(std::ostream& os, stop_reason r) { return os << name(r); }

const char* openai_finish_reason(stop_reason r, bool made_tool_calls) {
    switch (r) {
        case stop_reason::eos:
        case stop_reason::stop_string: return made_tool_calls ? "tool_calls" : "stop";
        case stop_reason::none:  // not finished: only a truncated reply can be reported
        case stop_reason::length:
        case stop_reason::context:
        case stop_reason::cancelled: return "length";
        case stop_reason::error: return "error";
    }
    return "length";
}

const char* ollama_done_reason(stop_reason r) { return openai_finish_reason(r, /*made_tool_calls=*/false); }

}  // namespace edgellm::engine
