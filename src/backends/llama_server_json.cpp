// llama-server message parsing across versions (see llama_server_json.h).
#include "backends/llama_server_json.h"

namespace edgellm::backends {
namespace {
using json = nlohmann::json;

std::optional<double> number_at(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
}

std::optional<int64_t> integer_at(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return std::nullopt;
    return static_cast<int64_t>(it->get<double>());
}

std::string error_message(const json& e) {
    if (e.is_string()) return e.get<std::string>();
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    return e.dump();
}

}  // namespace

llama_server_timings parse_llama_server_timings(const json& t) {
    llama_server_timings out;
    if (!t.is_object()) return out;
    out.prompt_n = integer_at(t, "prompt_n");
    out.cache_n = integer_at(t, "cache_n");
    out.prompt_ms = number_at(t, "prompt_ms");
    out.prompt_per_second = number_at(t, "prompt_per_second");
    out.predicted_n = integer_at(t, "predicted_n");
    out.predicted_ms = number_at(t, "predicted_ms");
    out.predicted_per_second = number_at(t, "predicted_per_second");
    return out;
}

std::optional<double> server_prefill_tokens_per_s(const llama_server_timings& t) {
    if (!t.prompt_n || *t.prompt_n < 1 || !t.prompt_ms || *t.prompt_ms <= 0) return std::nullopt;
    if (t.prompt_per_second && *t.prompt_per_second > 0) return *t.prompt_per_second;
    return static_cast<double>(*t.prompt_n) * 1000.0 / *t.prompt_ms;
}

std::optional<double> server_decode_tokens_per_s(const llama_server_timings& t) {
    if (!t.predicted_n || *t.predicted_n < 2 || !t.predicted_ms || *t.predicted_ms <= 0) return std::nullopt;
    if (t.predicted_per_second && *t.predicted_per_second > 0) return *t.predicted_per_second;
    return static_cast<double>(*t.predicted_n) * 1000.0 / *t.predicted_ms;
}

llama_server_event parse_llama_server_event(const json& j, bool chat) {
    llama_server_event ev;
    if (!j.is_object()) {
        ev.error = "message is not a JSON object: " + j.dump();
        return ev;
    }
    if (j.contains("error")) {
        ev.error = error_message(j["error"]);
        return ev;
    }
    if (j.contains("timings") && j["timings"].is_object()) ev.timings = parse_llama_server_timings(j["timings"]);
    if (chat) {
        if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
            const auto& c = j["choices"][0];
            if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
                c["delta"]["content"].is_string())
                ev.content = c["delta"]["content"].get<std::string>();
            if (c.contains("finish_reason") && c["finish_reason"].is_string()) {
                ev.final = true;
                ev.finish_reason = c["finish_reason"].get<std::string>();
            }
        }
        if (j.contains("usage") && j["usage"].is_object()) {
            ev.n_prompt_tokens = integer_at(j["usage"], "prompt_tokens");
            ev.n_gen_tokens = integer_at(j["usage"], "completion_tokens");
        }
        return ev;
    }
    if (j.contains("content") && j["content"].is_string()) ev.content = j["content"].get<std::string>();
    if (j.contains("stop") && j["stop"].is_boolean() && j["stop"].get<bool>()) {
        ev.final = true;
        ev.n_prompt_tokens = integer_at(j, "tokens_evaluated");
        ev.n_gen_tokens = integer_at(j, "tokens_predicted");
        std::string type = j.contains("stop_type") && j["stop_type"].is_string() ? j["stop_type"].get<std::string>() : "";
        const bool limit = type == "limit" || (j.contains("stopped_limit") && j["stopped_limit"].is_boolean() &&
                                               j["stopped_limit"].get<bool>());
        ev.finish_reason = limit ? "length" : "stop";
    }
    return ev;
}

}  // namespace edgellm::backends
