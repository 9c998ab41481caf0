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

constexpr int k_max_n = 16;          // choices per request
constexpr int k_max_top_logprobs = 20;  // alternatives per token (OpenAI's limit)

// The fields both OpenAI routes share. `chat`: logprobs is a boolean with top_logprobs (chat)
// or the number of alternatives (completions).
gen_input openai_input(const json& body, bool chat, int& n) {
    gen_input in;
    in.gp.n_predict = 16;  // OpenAI's completions default; chat sets its own below
    read_sampling(body, in.gp, /*ollama_names=*/false);
    in.stop = opt_strings(body, "stop");
    const int64_t nn = opt_int(body, "n").value_or(1);
    if (nn < 1 || nn > k_max_n) throw http_error(400, fmt::format("'n' must be between 1 and {}, got {}", k_max_n, nn));
    n = static_cast<int>(nn);
    if (chat) {
        const bool lp = opt_bool(body, "logprobs").value_or(false);
        const std::optional<int64_t> top = opt_int(body, "top_logprobs");
        if (top && (*top < 0 || *top > k_max_top_logprobs))
            throw http_error(400, fmt::format("'top_logprobs' must be between 0 and {}, got {}", k_max_top_logprobs, *top));
        if (top && !lp) throw http_error(400, "'top_logprobs' needs 'logprobs': true");
        in.gp.logprobs = lp ? static_cast<int>(top.value_or(0)) : -1;
    } else if (const std::optional<int64_t> lp = opt_int(body, "logprobs")) {
        if (*lp < 0 || *lp > k_max_top_logprobs)
            throw http_error(400, fmt::format("'logprobs' must be between 0 and {}, got {}", k_max_top_logprobs, *lp));
        in.gp.logprobs = static_cast<int>(*lp);
    }
    in.gp.sampling.grammar = response_format_grammar(body);
    return in;
}

// The bytes of a token's text as OpenAI lists them.
json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
}

// Chat logprobs entries: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}].
json chat_logprobs(const tokenizer* tok, std::span<const sampling::token_logprob> lps) {
    auto text = [tok](int32_t id) { return tok ? tok->token_to_piece(id, true) : fmt::format("[{}]", id); };
    json out = json::array();
    for (const auto& lp : lps) {
        json top = json::array();
        for (const auto& [id, v] : lp.top) {
            const std::string t = text(id);
            top.push_back({{"token", t}, {"logprob", v}, {"bytes", bytes_of(t)}});
        }
        const std::string t = text(lp.token);
        out.push_back({{"token", t}, {"logprob", lp.logprob}, {"bytes", bytes_of(t)}, {"top_logprobs", std::move(top)}});
    }
    return out;
}

// Completions logprobs: {tokens, token_logprobs, top_logprobs: [{text: logprob}], text_offset};
// `offset` is the text offset of the first token (advanced past these).
json completion_logprobs(const tokenizer* tok, std::span<const sampling::token_logprob> lps, size_t& offset) {
    auto text = [tok](int32_t id) { return tok ? tok->token_to_piece(id, true) : fmt::format("[{}]", id); };
    json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
    for (const auto& lp : lps) {
        const std::string t = text(lp.token);
        tokens.push_back(t);
        values.push_back(lp.logprob);
        json top = json::object();
        for (const auto& [id, v] : lp.top) {
            const std::string k = text(id);
            if (!top.contains(k)) top[k] = v;
        }
        tops.push_back(std::move(top));
        offsets.push_back(offset);
        offset += t.size();
    }
    return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// Usage of a request: the prompt once, the tokens of every choice.
json usage_of(const std::vector<std::shared_ptr<job>>& js) {
    int64_t completion = 0;
    for (const auto& j : js) completion += static_cast<int64_t>(j->res.tokens.size());
    const int64_t prompt = js[0]->res.n_prompt;
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion},
            {"prompt_tokens_details", {{"cached_tokens", js[0]->res.n_cached}}}};  // prefix cache hits
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

// The finish_reason of a chat reply: "tool_calls" when a reply that ended on its own made calls.
std::string chat_finish_reason(const tool_reply& r, engine::stop_reason stop) {
    return engine::openai_finish_reason(stop, !r.calls.empty());
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
    post("/v1/chat/completions", api::openai, wrap(api::openai, [this](const http::request& req, http::response& res) {
                  const json body = parse_body(req);
                  check_model(body, api::openai, /*required=*/false);
                  const bool has_max = body.contains("max_tokens") || body.contains("max_completion_tokens");
                  int n = 1;
                  gen_input in = openai_input(body, /*chat=*/true, n);
                  // Chat: no limit given means until the end of the turn (or the context).
                  if (!has_max) in.gp.n_predict = std::numeric_limits<int>::max();
                  const bool stream = opt_bool(body, "stream").value_or(false);
                  const bool usage = stream && include_usage(body);
                  const bool want_lp = in.gp.logprobs >= 0;
                  tool_state ts;
                  in.prompt = chat_prompt_with_tools(body, in, ts);
                  jobs js = start_n(in, n);
                  const std::string id = new_id("chatcmpl");
                  const int64_t created = unix_now();
                  const std::string name = p.model_name;
                  const tokenizer* tok = lm->get_tokenizer();
                  if (!stream) {
                      respond_jobs(res, js, api::openai, [id, created, name, ts, want_lp, tok](const jobs& all) {
                          json choices = json::array();
                          for (const auto& jj : all) {
                              const tool_reply r = split_reply(ts, jj->pending);
                              json c = {{"index", jj->index}, {"message", chat_message_of(r)}, {"logprobs", nullptr},
                                        {"finish_reason", chat_finish_reason(r, jj->stop)}};
                              if (want_lp) c["logprobs"] = {{"content", chat_logprobs(tok, jj->logprobs)}};
                              choices.push_back(std::move(c));
                          }
                          return json{{"id", id},         {"object", "chat.completion"}, {"created", created},
                                      {"model", name},    {"choices", std::move(choices)}, {"usage", usage_of(all)}};
                      });
                      return;
                  }
                  auto chunk = [id, created, name](int index, json delta, json finish, json logprobs = nullptr) {
                      json c = {{"index", index}, {"delta", std::move(delta)}};
                      if (!logprobs.is_null()) c["logprobs"] = std::move(logprobs);
                      c["finish_reason"] = std::move(finish);
                      return json{{"id", id},     {"object", "chat.completion.chunk"}, {"created", created},
                                  {"model", name}, {"choices", json::array({std::move(c)})}};
                  };
                  // Per choice: whether its role chunk went out, and (with tools) its text held
                  // until the reply is complete, when a call can be recognised.
                  auto first = std::make_shared<std::vector<bool>>(n, true);
                  auto held = std::make_shared<std::vector<std::string>>(n);
                  auto role = [chunk, first](int i) {
                      if (!(*first)[i]) return std::string();
                      (*first)[i] = false;
                      return sse(chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr));
                  };
                  stream_jobs(res, js, "text/event-stream",
                              [chunk, role, held, ts, want_lp, tok](const job& jj, const std::string& piece, lp_span lps) {
                                  const int i = jj.index;
                                  std::string out = role(i);
                                  json lp = want_lp && !lps.empty() ? json{{"content", chat_logprobs(tok, lps)}} : json();
                                  if (ts.active) {
                                      (*held)[i] += piece;
                                      if (!lp.is_null()) out += sse(chunk(i, json::object(), nullptr, std::move(lp)));
                                      return out;
                                  }
                                  return out + sse(chunk(i, {{"content", piece}}, nullptr, std::move(lp)));
                              },
                              [chunk, role, held, ts](const job& jj) {
                                  const int i = jj.index;
                                  std::string out = role(i);
                                  std::string finish = engine::openai_finish_reason(jj.stop);
                                  if (ts.active) {
                                      const tool_reply r = split_reply(ts, (*held)[i]);
                                      for (json& d : tool_deltas(r)) out += sse(chunk(i, std::move(d), nullptr));
                                      finish = chat_finish_reason(r, jj.stop);
                                  }
                                  if (jj.stop == engine::stop_reason::error)
                                      out += sse(json{{"error", {{"message", jj.res.error}, {"type", "server_error"}}}});
                                  return out + sse(chunk(i, json::object(), finish));
                              },
                              [js, usage, id, created, name] {
                                  std::string out;
                                  if (usage)
                                      out += sse(json{{"id", id},
                                                      {"object", "chat.completion.chunk"},
                                                      {"created", created},
                                                      {"model", name},
                                                      {"choices", json::array()},
                                                      {"usage", usage_of(js)}});
                                  return out + "data: [DONE]\n\n";
                              });
              }));

    post("/v1/completions", api::openai, wrap(api::openai, [this](const http::request& req, http::response& res) {
                  const json body = parse_body(req);
                  check_model(body, api::openai, /*required=*/false);
                  int n = 1;
                  gen_input in = openai_input(body, /*chat=*/false, n);
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
                  const bool want_lp = in.gp.logprobs >= 0;
                  in.prompt = text_prompt(prompt);
                  jobs js = start_n(in, n);
                  const std::string id = new_id("cmpl");
                  const int64_t created = unix_now();
                  const std::string name = p.model_name;
                  const tokenizer* tok = lm->get_tokenizer();
                  auto chunk = [id, created, name](int index, const std::string& text, json finish, json logprobs) {
                      return json{{"id", id},
                                  {"object", "text_completion"},
                                  {"created", created},
                                  {"model", name},
                                  {"choices", json::array({{{"text", text}, {"index", index}, {"logprobs", std::move(logprobs)},
                                                            {"finish_reason", std::move(finish)}}})}};
                  };
                  if (!stream) {
                      respond_jobs(res, js, api::openai, [chunk, want_lp, tok](const jobs& all) {
                          json out;
                          for (const auto& jj : all) {
                              size_t offset = 0;
                              json lp = want_lp ? completion_logprobs(tok, jj->logprobs, offset) : json();
                              json one = chunk(jj->index, jj->pending, engine::openai_finish_reason(jj->stop), std::move(lp));
                              if (out.is_null()) out = std::move(one);
                              else out["choices"].push_back(std::move(one["choices"][0]));
                          }
                          out["usage"] = usage_of(all);
                          return out;
                      });
                      return;
                  }
                  auto offsets = std::make_shared<std::vector<size_t>>(n, 0);
                  stream_jobs(res, js, "text/event-stream",
                              [chunk, want_lp, tok, offsets](const job& jj, const std::string& piece, lp_span lps) {
                                  json lp = want_lp ? completion_logprobs(tok, lps, (*offsets)[jj.index]) : json();
                                  return sse(chunk(jj.index, piece, nullptr, std::move(lp)));
                              },
                              [chunk](const job& jj) {
                                  std::string out;
                                  if (jj.stop == engine::stop_reason::error)
                                      out += sse(json{{"error", {{"message", jj.res.error}, {"type", "server_error"}}}});
                                  return out + sse(chunk(jj.index, "", engine::openai_finish_reason(jj.stop), nullptr));
                              },
                              [chunk, js, usage, id, created, name] {
                                  std::string out;
                                  if (usage)
                                      out += sse(json{{"id", id}, {"object", "text_completion"}, {"created", created},
                                                      {"model", name}, {"choices", json::array()}, {"usage", usage_of(js)}});
                                  return out + "data: [DONE]\n\n";
                              });
              }));

    http_srv->route("GET", "/v1/models", wrap(api::openai, [this](const http::request&, http::response& res) {
                 json m = {{"id", p.model_name}, {"object", "model"}, {"created", started_unix}, {"owned_by", "edgellm"}};
                 res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
             }));
}

}  // namespace edgellm::server
