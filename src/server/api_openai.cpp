// The OpenAI API: /v1/chat/completions and /v1/completions (SSE streaming ending in
// "data: [DONE]", usage in the last chunk with stream_options.include_usage), /v1/models.
#include <fmt/format.h>

#include "sampling/json_schema.h"
#include "server/server_impl.h"

namespace edgellm::server {
namespace {

// response_format: {"type": "text" | "json_object" | "json_schema", "json_schema": {"name",
// "schema", "strict"}} -> the grammar the output must follow (null for text).
std::shared_ptr<const sampling::grammar> response_format_grammar(const json& body) {
    auto f = body.find("response_format");
    if (f == body.end() || f->is_null()) return nullptr;
    if (!f->is_object()) throw http_error(400, "'response_format' must be an object with a 'type'");
    const std::string type = opt_string(*f, "type").value_or("");
    if (type == "text") return nullptr;
    if (type == "json_object") return sampling::json_object_grammar();
    if (type != "json_schema")
        throw http_error(400, fmt::format("'response_format.type' must be 'text', 'json_object' or 'json_schema', got '{}'",
                                          type));
    auto js = f->find("json_schema");
    if (js == f->end() || !js->is_object())
        throw http_error(400, "'response_format.json_schema' must be an object with 'name' and 'schema'");
    opt_string(*js, "name");
    opt_bool(*js, "strict");  // the grammar is always followed strictly
    auto schema = js->find("schema");
    if (schema == js->end() || schema->is_null()) return sampling::json_object_grammar();  // no schema: any object
    return schema_grammar(*schema, "response_format.json_schema.schema");
}

gen_input openai_input(const json& body) {
    gen_input in;
    in.gp.n_predict = 16;  // OpenAI's completions default; chat sets its own below
    read_sampling(body, in.gp, /*ollama_names=*/false);
    in.stop = opt_strings(body, "stop");
    if (auto n = opt_int(body, "n"); n && *n != 1) throw http_error(400, "only n = 1 is supported");
    if (opt_bool(body, "logprobs").value_or(false) || (body.contains("logprobs") && body["logprobs"].is_number()))
        throw http_error(400, "logprobs are not supported by this server");
    in.gp.sampling.grammar = response_format_grammar(body);
    return in;
}

json usage_of(const job& j) {
    const int64_t completion = static_cast<int64_t>(j.res.tokens.size());
    return {{"prompt_tokens", j.res.n_prompt},
            {"completion_tokens", completion},
            {"total_tokens", j.res.n_prompt + completion}};
}

std::string sse(const json& chunk) {
    return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::string new_id(const char* prefix) {
    static std::atomic<uint64_t> n{0};
    return fmt::format("{}-{:x}{:06x}", prefix, unix_now(), ++n);
}

// The assistant message of a finished chat reply: content, and tool_calls when it made any
// (arguments as a JSON string, as OpenAI sends them).
json chat_message_of(const tool_reply& r) {
    json m = {{"role", "assistant"}, {"content", r.content}};
    if (r.calls.empty()) return m;
    if (r.content.empty()) m["content"] = nullptr;
    json calls = json::array();
    for (const auto& c : r.calls)
        calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments.dump()}}}});
    m["tool_calls"] = std::move(calls);
    return m;
}

// "tool_calls" when a reply that ended on its own made calls.
std::string chat_finish_reason(const tool_reply& r, const std::string& finish) {
    return !r.calls.empty() && finish == "stop" ? "tool_calls" : finish;
}

// The streamed deltas of a buffered tool reply, as OpenAI streams them: the text, then per call
// one delta with its index, id, type and name (arguments ""), then the arguments in pieces.
std::vector<json> tool_deltas(const tool_reply& r) {
    std::vector<json> out;
    if (!r.content.empty()) out.push_back({{"content", r.content}});
    for (size_t i = 0; i < r.calls.size(); ++i) {
        const auto& c = r.calls[i];
        out.push_back({{"tool_calls", json::array({{{"index", i}, {"id", c.id}, {"type", "function"},
                                                    {"function", {{"name", c.name}, {"arguments", ""}}}}})}});
        const std::string args = c.arguments.dump();
        constexpr size_t k_piece = 16;
        for (size_t at = 0; at < args.size(); at += k_piece)
            out.push_back({{"tool_calls", json::array({{{"index", i}, {"function", {{"arguments", args.substr(at, k_piece)}}}}})}});
    }
    return out;
}

bool include_usage(const json& body) {
    auto it = body.find("stream_options");
    if (it == body.end() || it->is_null()) return false;
    if (!it->is_object()) throw http_error(400, "'stream_options' must be an object");
    return opt_bool(*it, "include_usage").value_or(false);
}

}  // namespace

void server::impl::add_openai_routes() {
    post("/v1/chat/completions", api::openai, wrap(api::openai, [this](const httplib::Request& req, httplib::Response& res) {
                  const json body = parse_body(req);
                  check_model(body, api::openai, /*required=*/false);
                  const bool has_max = body.contains("max_tokens") || body.contains("max_completion_tokens");
                  gen_input in = openai_input(body);
                  // Chat: no limit given means until the end of the turn (or the context).
                  if (!has_max) in.gp.n_predict = std::numeric_limits<int>::max();
                  const bool stream = opt_bool(body, "stream").value_or(false);
                  const bool usage = stream && include_usage(body);
                  tool_state ts;
                  in.prompt = chat_prompt_with_tools(body, in, ts);
                  auto j = start(std::move(in));
                  const std::string id = new_id("chatcmpl");
                  const int64_t created = unix_now();
                  const std::string name = p.model_name;
                  if (!stream) {
                      respond_job(res, j, api::openai, [id, created, name, ts](const job& jj) {
                          const tool_reply r = split_reply(ts, jj.pending);
                          return json{{"id", id},
                                      {"object", "chat.completion"},
                                      {"created", created},
                                      {"model", name},
                                      {"choices", json::array({{{"index", 0},
                                                                {"message", chat_message_of(r)},
                                                                {"finish_reason", chat_finish_reason(r, jj.finish_reason)}}})},
                                      {"usage", usage_of(jj)}};
                      });
                      return;
                  }
                  auto chunk = [id, created, name](json delta, json finish) {
                      return json{{"id", id},
                                  {"object", "chat.completion.chunk"},
                                  {"created", created},
                                  {"model", name},
                                  {"choices", json::array({{{"index", 0}, {"delta", std::move(delta)},
                                                            {"finish_reason", std::move(finish)}}})}};
                  };
                  auto first = std::make_shared<bool>(true);
                  // With tools the reply is parsed when it is complete: its text is held until then.
                  auto held = std::make_shared<std::string>();
                  stream_job(res, j, "text/event-stream",
                             [chunk, first, held, ts](const std::string& piece) {
                                 std::string out;
                                 if (*first) {
                                     out += sse(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
                                     *first = false;
                                 }
                                 if (ts.active) {
                                     *held += piece;
                                     return out;
                                 }
                                 return out + sse(chunk({{"content", piece}}, nullptr));
                             },
                             [chunk, first, held, ts, usage, id, created, name](const job& jj) {
                                 std::string out;
                                 if (*first) out += sse(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
                                 std::string finish = jj.finish_reason;
                                 if (ts.active) {
                                     const tool_reply r = split_reply(ts, *held);
                                     for (json& d : tool_deltas(r)) out += sse(chunk(std::move(d), nullptr));
                                     finish = chat_finish_reason(r, finish);
                                 }
                                 if (jj.finish_reason == "error")
                                     out += sse(json{{"error", {{"message", jj.res.error}, {"type", "server_error"}}}});
                                 out += sse(chunk(json::object(), finish));
                                 if (usage)
                                     out += sse(json{{"id", id},
                                                     {"object", "chat.completion.chunk"},
                                                     {"created", created},
                                                     {"model", name},
                                                     {"choices", json::array()},
                                                     {"usage", usage_of(jj)}});
                                 return out + "data: [DONE]\n\n";
                             });
              }));

    post("/v1/completions", api::openai, wrap(api::openai, [this](const httplib::Request& req, httplib::Response& res) {
                  const json body = parse_body(req);
                  check_model(body, api::openai, /*required=*/false);
                  gen_input in = openai_input(body);
                  auto pr = body.find("prompt");
                  std::string prompt;
                  if (pr == body.end() || pr->is_null()) throw http_error(400, "'prompt' is required");
                  if (pr->is_string()) {
                      prompt = pr->get<std::string>();
                  } else if (pr->is_array() && pr->size() == 1 && (*pr)[0].is_string()) {
                      prompt = (*pr)[0].get<std::string>();
                  } else {
                      throw http_error(400, "'prompt' must be a string (one prompt per request)");
                  }
                  if (opt_bool(body, "echo").value_or(false)) throw http_error(400, "'echo' is not supported");
                  const bool stream = opt_bool(body, "stream").value_or(false);
                  const bool usage = stream && include_usage(body);
                  in.prompt = text_prompt(prompt);
                  auto j = start(std::move(in));
                  const std::string id = new_id("cmpl");
                  const int64_t created = unix_now();
                  const std::string name = p.model_name;
                  auto chunk = [id, created, name](const std::string& text, json finish) {
                      return json{{"id", id},
                                  {"object", "text_completion"},
                                  {"created", created},
                                  {"model", name},
                                  {"choices", json::array({{{"text", text}, {"index", 0}, {"logprobs", nullptr},
                                                            {"finish_reason", std::move(finish)}}})}};
                  };
                  if (!stream) {
                      respond_job(res, j, api::openai, [chunk](const job& jj) {
                          json out = chunk(jj.pending, jj.finish_reason);
                          out["usage"] = usage_of(jj);
                          return out;
                      });
                      return;
                  }
                  stream_job(res, j, "text/event-stream",
                             [chunk](const std::string& piece) { return sse(chunk(piece, nullptr)); },
                             [chunk, usage](const job& jj) {
                                 std::string out;
                                 if (jj.finish_reason == "error")
                                     out += sse(json{{"error", {{"message", jj.res.error}, {"type", "server_error"}}}});
                                 json last = chunk("", jj.finish_reason);
                                 if (usage) last["usage"] = usage_of(jj);
                                 return out + sse(last) + "data: [DONE]\n\n";
                             });
              }));

    http.Get("/v1/models", wrap(api::openai, [this](const httplib::Request&, httplib::Response& res) {
                 json m = {{"id", p.model_name}, {"object", "model"}, {"created", started_unix}, {"owned_by", "edgellm"}};
                 res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
             }));
}

}  // namespace edgellm::server
