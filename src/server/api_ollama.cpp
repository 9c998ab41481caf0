// Ollama's REST API (docs/api.md of the Ollama project): /api/generate and /api/chat with
// NDJSON streaming (the default) or one JSON object, /api/tags, /api/show, /api/ps, /api/version.
#include <fmt/format.h>

#include <variant>

#include "sampling/json_schema.h"
#include "server/server_impl.h"

namespace edgellm::server {
namespace {

// Reads Ollama's request fields into a generation: "options" holds the sampling values.
gen_input ollama_input(const json& body) {
    gen_input in;
    if (auto it = body.find("options"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) throw http_error(400, "'options' must be an object");
        read_sampling(*it, in.gp, /*ollama_names=*/true);
        in.stop = opt_strings(*it, "stop");
    } else {
        read_sampling(json::object(), in.gp, /*ollama_names=*/true);  // the defaults, a fresh seed
    }
    // format: "json" (any JSON object) or a JSON schema.
    if (auto f = body.find("format"); f != body.end() && !f->is_null()) {
        if (f->is_string() && f->get<std::string>() == "json")
            in.gp.sampling.grammar = sampling::json_object_grammar();
        else if (f->is_object())
            in.gp.sampling.grammar = schema_grammar(*f, "format");
        else if (!(f->is_string() && f->get<std::string>().empty()))
            throw http_error(400, "'format' must be \"json\" or a JSON schema object");
    }
    return in;
}

// The final record's timing fields, in nanoseconds as Ollama reports them.
void add_stats(json& out, const job& j) {
    const auto ns = [](double ms) { return static_cast<int64_t>(ms * 1e6); };
    const engine::sequence_result& r = j.res;
    out["done_reason"] = engine::ollama_done_reason(j.stop);
    out["total_duration"] = ns(r.latency_ms > 0 ? r.latency_ms : r.queue_ms + r.prefill_ms);
    out["load_duration"] = 0;  // the model stays loaded; the queue wait is queue_duration
    out["queue_duration"] = ns(r.queue_ms);
    // As Ollama and llama-server: the prompt tokens evaluated, without those whose KV came from
    // the prefix cache (docs/server.md).
    out["prompt_eval_count"] = r.n_prompt - r.n_cached;
    out["prompt_eval_duration"] = ns(r.prefill_ms);
    out["eval_count"] = static_cast<int64_t>(r.tokens.size());
    out["eval_duration"] = ns(r.decode_ms + r.sample_ms);
}

// Ollama's assistant message: content, and tool_calls with arguments as an object.
json ollama_message(const tool_reply& r) {
    json m = {{"role", "assistant"}, {"content", r.content}};
    if (r.calls.empty()) return m;
    json calls = json::array();
    for (const auto& c : r.calls) calls.push_back({{"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    m["tool_calls"] = std::move(calls);
    return m;
}

}  // namespace

void server::impl::add_ollama_routes() {
    // /api/generate: a prompt, formatted with the model's own chat template when it has one
    // (as Ollama does), raw otherwise or with "raw": true.
    post("/api/generate", api::ollama, wrap(api::ollama, [this](const http::request& req, http::response& res) {
                  const json body = parse_body(req);
                  check_model(body, api::ollama, /*required=*/true);
                  gen_input in = ollama_input(body);
                  const std::string prompt = opt_string(body, "prompt").value_or("");
                  const std::string system = opt_string(body, "system").value_or("");
                  const bool raw = opt_bool(body, "raw").value_or(false);
                  const bool stream = opt_bool(body, "stream").value_or(true);
                  const std::string created = rfc3339_now();
                  if (prompt.empty() && system.empty()) {
                      // Ollama: an empty prompt only loads the model.
                      res.set_content(json{{"model", p.model_name}, {"created_at", created}, {"response", ""},
                                           {"done", true}, {"done_reason", "load"}}.dump(),
                                      "application/json");
                      return;
                  }
                  if (!raw && has_own_template()) {
                      std::vector<chat::chat_message> msgs;
                      if (!system.empty()) msgs.push_back({"system", system, {}});
                      msgs.push_back({"user", prompt, {}});
                      in.prompt = chat_prompt(msgs);
                  } else {
                      in.prompt = text_prompt(prompt);
                  }
                  auto j = start(std::move(in));
                  const std::string name = p.model_name;
                  if (!stream) {
                      respond_job(res, j, api::ollama, [name](const job& jj) {
                          json out = {{"model", name}, {"created_at", rfc3339_now()}, {"response", jj.pending}, {"done", true}};
                          add_stats(out, jj);
                          return out;
                      });
                      return;
                  }
                  stream_job(res, j, "application/x-ndjson",
                             [name](const std::string& piece) {
                                 return json{{"model", name}, {"created_at", rfc3339_now()}, {"response", piece},
                                             {"done", false}}
                                            .dump(-1, ' ', false, json::error_handler_t::replace) +
                                        "\n";
                             },
                             [name](const job& jj) {
                                 json out = {{"model", name}, {"created_at", rfc3339_now()}, {"response", ""}, {"done", true}};
                                 if (jj.stop == engine::stop_reason::error) out["error"] = jj.res.error;
                                 add_stats(out, jj);
                                 return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
                             });
              }));

    post("/api/chat", api::ollama, wrap(api::ollama, [this](const http::request& req, http::response& res) {
                  const json body = parse_body(req);
                  check_model(body, api::ollama, /*required=*/true);
                  gen_input in = ollama_input(body);
                  const bool stream = opt_bool(body, "stream").value_or(true);
                  if (body.contains("tool_choice"))
                      throw http_error(400, "'tool_choice' is an OpenAI field; Ollama's /api/chat has none");
                  tool_state ts;
                  in.prompt = chat_prompt_with_tools(body, in, ts);
                  auto j = start(std::move(in));
                  const std::string name = p.model_name;
                  if (!stream) {
                      respond_job(res, j, api::ollama, [name, ts](const job& jj) {
                          json out = {{"model", name},
                                      {"created_at", rfc3339_now()},
                                      {"message", ollama_message(split_reply(ts, jj.pending))},
                                      {"done", true}};
                          add_stats(out, jj);
                          return out;
                      });
                      return;
                  }
                  // With tools the reply is parsed when complete: its text is held until then.
                  auto held = std::make_shared<std::string>();
                  stream_job(res, j, "application/x-ndjson",
                             [name, ts, held](const std::string& piece) {
                                 if (ts.active) {
                                     *held += piece;
                                     return std::string();
                                 }
                                 return json{{"model", name},
                                             {"created_at", rfc3339_now()},
                                             {"message", {{"role", "assistant"}, {"content", piece}}},
                                             {"done", false}}
                                            .dump(-1, ' ', false, json::error_handler_t::replace) +
                                        "\n";
                             },
                             [name, ts, held](const job& jj) {
                                 std::string pre;
                                 if (ts.active)
                                     pre = json{{"model", name},
                                                {"created_at", rfc3339_now()},
                                                {"message", ollama_message(split_reply(ts, *held))},
                                                {"done", false}}
                                               .dump(-1, ' ', false, json::error_handler_t::replace) +
                                           "\n";
                                 json out = {{"model", name},
                                             {"created_at", rfc3339_now()},
                                             {"message", {{"role", "assistant"}, {"content", ""}}},
                                             {"done", true}};
                                 if (jj.stop == engine::stop_reason::error) out["error"] = jj.res.error;
                                 add_stats(out, jj);
                                 return pre + out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
                             });
              }));

    http_srv->route("GET", "/api/tags", wrap(api::ollama, [this](const http::request&, http::response& res) {
                 const uint64_t size = lm->get_model().file().file_size();
                 json m = {{"name", p.model_name + ":latest"},
                           {"model", p.model_name + ":latest"},
                           {"modified_at", rfc3339_now()},
                           {"size", size},
                           {"digest", ""},
                           {"details", model_details()}};
                 // Then the model store's models (`edgellm pull`): requests for them get a 404 naming
                 // the served model, as this server serves one model.
                 json models = json::array({m});
                 for (auto& s : store_tags())
                     if (s["name"] != m["name"]) models.push_back(std::move(s));
                 res.set_content(json{{"models", models}}.dump(), "application/json");
             }));

    http_srv->route("GET", "/api/ps", wrap(api::ollama, [this](const http::request&, http::response& res) {
                 const uint64_t size = lm->get_model().file().file_size() + (eng ? eng->kv().size_bytes() : 0);
                 json m = {{"name", p.model_name + ":latest"},
                           {"model", p.model_name + ":latest"},
                           {"size", size},
                           {"digest", ""},
                           {"details", model_details()},
                           {"expires_at", "9999-12-31T23:59:59Z"},  // loaded for the server's lifetime
                           {"size_vram", 0}};                         // CPU engine: nothing on a GPU
                 res.set_content(json{{"models", json::array({m})}}.dump(), "application/json");
             }));

    post("/api/show", api::ollama, wrap(api::ollama, [this](const http::request& req, http::response& res) {
                  json body = parse_body(req);
                  // Older clients send "name" instead of "model".
                  if (!body.contains("model") && body.contains("name")) body["model"] = body["name"];
                  check_model(body, api::ollama, /*required=*/true);
                  const gguf::file& f = lm->get_model().file();
                  json info = json::object();
                  for (const auto& kv : f.metadata()) {
                      // Arrays (the vocabulary) are large and say nothing a client needs.
                      const std::string& key = kv.first;
                      if (key == "tokenizer.chat_template") continue;
                      std::visit(
                          [&info, &key](const auto& x) {
                              using T = std::decay_t<decltype(x)>;
                              if constexpr (!std::is_same_v<T, std::shared_ptr<gguf::array_value>>) info[key] = x;
                          },
                          kv.second.data);
                  }
                  json out = {{"modelfile", fmt::format("FROM {}\n", model_path)},
                              {"parameters", ""},
                              {"template", f.get_string_opt("tokenizer.chat_template").value_or("{{ .Prompt }}")},
                              {"details", model_details()},
                              {"model_info", info},
                              // Every template gets tool calls (its own format or the generic one).
                              {"capabilities", json::array({"completion", "tools"})}};
                  res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
              }));

    http_srv->route("GET", "/api/version", wrap(api::ollama, [](const http::request&, http::response& res) {
                 res.set_content(json{{"version", EDGELLM_VERSION}}.dump(), "application/json");
             }));
}

}  // namespace edgellm::server
