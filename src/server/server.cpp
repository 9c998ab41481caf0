// The server core: the engine thread running the scheduler, the bridge that turns a request
// into a scheduler sequence and streams its text back, the error wrapper every route goes
// through, request-field readers, /health and Prometheus /metrics.
#include "server/server.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <ctime>
#include <filesystem>

#include "core/log.h"
#include "core/timing.h"
#include "engine/speculative.h"
#include "gguf/gguf_summary.h"
#include "sampling/json_schema.h"
#include "server/access.h"
#include "server/server_impl.h"
#include "server/webui.h"

namespace edgellm::server {

// ---- field readers ----

namespace {
const char* type_of(const json& v) { return v.type_name(); }

json error_json(api a, int status, const std::string& msg, const std::string& type) {
    if (a == api::openai) return {{"error", {{"message", msg}, {"type", type}, {"param", nullptr}, {"code", status}}}};
    return {{"error", msg}};
}
}  // namespace

std::optional<double> opt_number(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_number()) throw http_error(400, fmt::format("'{}' must be a number, got {}", key, type_of(*it)));
    return it->get<double>();
}

std::optional<int64_t> opt_int(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    auto out_of_range = [&] {
        return http_error(400, fmt::format("'{}' is out of range: {} (a 64-bit signed integer is the most)", key, it->dump()));
    };
    if (it->is_number_unsigned()) {  // nlohmann keeps integers above INT64_MAX as unsigned: never wrap them
        const uint64_t u = it->get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) throw out_of_range();
        return static_cast<int64_t>(u);
    }
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_number_float()) {
        const double d = it->get<double>();
        if (std::isfinite(d) && d == std::trunc(d)) {
            // Casting a double outside int64's range is undefined behaviour: check first.
            if (d < -9.2e18 || d > 9.2e18) throw out_of_range();
            return static_cast<int64_t>(d);
        }
    }
    throw http_error(400, fmt::format("'{}' must be an integer, got {}", key, type_of(*it)));
}

std::optional<int64_t> opt_int_in(const json& obj, const char* key, int64_t lo, int64_t hi) {
    const auto v = opt_int(obj, key);
    if (v && (*v < lo || *v > hi))
        throw http_error(400, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, *v));
    return v;
}

std::optional<bool> opt_bool(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) throw http_error(400, fmt::format("'{}' must be true or false, got {}", key, type_of(*it)));
    return it->get<bool>();
}

std::optional<std::string> opt_string(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw http_error(400, fmt::format("'{}' must be a string, got {}", key, type_of(*it)));
    return it->get<std::string>();
}

std::vector<std::string> opt_strings(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return {};
    if (it->is_string()) return {it->get<std::string>()};
    if (!it->is_array()) throw http_error(400, fmt::format("'{}' must be a string or an array of strings", key));
    std::vector<std::string> out;
    for (const auto& v : *it) {
        if (!v.is_string()) throw http_error(400, fmt::format("'{}' must hold only strings", key));
        out.push_back(v.get<std::string>());
    }
    return out;
}

namespace {
// The most keys one object of a request body may have. ordered_json (which keeps the key order
// JSON schemas and tool arguments need) inserts in linear time, so an object of n keys costs n^2:
// 200,000 keys were 33 s of a core. 10,000 keys cost a few milliseconds.
constexpr size_t k_max_object_keys = 10000;

// The most members of any object in a JSON text, by one linear scan (commas at each object's
// own level, outside strings); exact for valid JSON, and malformed text is the parser's to refuse.
size_t max_object_members(std::string_view text) {
    std::vector<std::pair<bool, size_t>> open;  // (is an object, members so far)
    bool in_string = false, escaped = false;
    size_t worst = 0;
    for (const char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        switch (c) {
            case '"': in_string = true; break;
            case '{': open.emplace_back(true, 1); worst = std::max<size_t>(worst, 1); break;
            case '[': open.emplace_back(false, 0); break;
            case '}':
            case ']':
                if (!open.empty()) open.pop_back();
                break;
            case ',':
                if (!open.empty() && open.back().first) worst = std::max(worst, ++open.back().second);
                break;
            default: break;
        }
    }
    return worst;
}
}  // namespace

json parse_body(const http::request& req) {
    if (max_object_members(req.body) > k_max_object_keys)
        throw http_error(400, fmt::format("an object in the request body has more than {} keys", k_max_object_keys));
    json body;
    try {
        body = json::parse(req.body);
    } catch (const json::parse_error& e) {
        throw http_error(400, fmt::format("malformed JSON in the request body: {}", e.what()));
    } catch (const json::exception& e) {  // out_of_range: a number too large for a double (1e400)
        throw http_error(400, fmt::format("unusable JSON in the request body: {}", e.what()));
    }
    if (!body.is_object()) throw http_error(400, "the request body must be a JSON object");
    return body;
}

std::vector<chat::chat_message> parse_messages(const json& body) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array()) throw http_error(400, "'messages' must be an array of {role, content}");
    if (it->empty()) throw http_error(400, "'messages' is empty");
    std::vector<chat::chat_message> out;
    for (const auto& m : *it) {
        if (!m.is_object()) throw http_error(400, "each message must be an object with 'role' and 'content'");
        const auto role = opt_string(m, "role");
        if (!role) throw http_error(400, "a message has no 'role'");
        std::string content;
        auto c = m.find("content");
        if (c != m.end() && c->is_string()) {
            content = c->get<std::string>();
        } else if (c != m.end() && c->is_array()) {
            // OpenAI content parts: only text parts are understood.
            for (const auto& part : *c) {
                if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
                    !part["text"].is_string())
                    throw http_error(400, "only text content parts are supported");
                content += part["text"].get<std::string>();
            }
        } else if (c != m.end() && !c->is_null()) {
            throw http_error(400, "a message's 'content' must be a string");
        }
        // Tool calls of an assistant turn and the id / name of a tool result, for the template
        // (chat/tool_calls.h rewrites them per format).
        json extra = json::object();
        if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null()) {
            if (!tc->is_array()) throw http_error(400, "a message's 'tool_calls' must be an array");
            for (const auto& call : *tc) {
                const json& fn = call.is_object() && call.contains("function") ? call["function"] : call;
                if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string())
                    throw http_error(400, "each of a message's 'tool_calls' must have function.name");
            }
            extra["tool_calls"] = *tc;
            if (c == m.end() || c->is_null()) extra["content"] = nullptr;
        }
        if (auto id = opt_string(m, "tool_call_id")) extra["tool_call_id"] = *id;
        if (auto n = opt_string(m, "name")) extra["name"] = *n;
        else if (auto tn = opt_string(m, "tool_name")) extra["name"] = *tn;  // Ollama
        out.push_back({*role, content, std::move(extra)});
    }
    return out;
}

void read_sampling(const json& o, engine::generation_params& gp, bool ollama_names) {
    auto& s = gp.sampling;
    if (auto v = opt_number(o, "temperature")) s.temperature = static_cast<float>(*v);
    if (auto v = opt_number(o, "top_p")) s.top_p = static_cast<float>(*v);
    if (auto v = opt_number(o, "min_p")) s.min_p = static_cast<float>(*v);
    constexpr int64_t k_int_max = std::numeric_limits<int>::max();
    if (auto v = opt_int_in(o, "top_k", 0, k_int_max)) s.top_k = static_cast<int>(*v);
    if (auto v = opt_number(o, "repeat_penalty")) s.repeat_penalty = static_cast<float>(*v);
    if (auto v = opt_int_in(o, "repeat_last_n", -1, k_int_max)) s.penalty_last_n = static_cast<int>(*v);
    if (auto v = opt_number(o, "frequency_penalty")) s.frequency_penalty = static_cast<float>(*v);
    if (auto v = opt_number(o, "presence_penalty")) s.presence_penalty = static_cast<float>(*v);
    // No seed: a fresh one, so repeated requests sample afresh (as OpenAI and Ollama do).
    // A seed is any 64-bit value, signed (OpenAI) or not.
    const auto seed_it = o.find("seed");
    const bool big_seed = seed_it != o.end() && seed_it->is_number_unsigned();
    const std::optional<int64_t> seed = big_seed ? std::nullopt : opt_int(o, "seed");
    s.seed = big_seed ? seed_it->get<uint64_t>() : seed ? static_cast<uint64_t>(*seed) : sampling::random_seed();
    const char* n_key = ollama_names ? "num_predict" : "max_tokens";
    std::optional<int64_t> n = opt_int(o, n_key);
    if (!ollama_names && !n) n = opt_int(o, "max_completion_tokens");
    if (n) {
        if (*n < 0 && ollama_names) {
            gp.n_predict = std::numeric_limits<int>::max();  // Ollama: -1 = until the context is full
        } else if (*n <= 0) {
            throw http_error(400, fmt::format("'{}' must be positive, got {}", n_key, *n));
        } else {
            gp.n_predict = static_cast<int>(std::min<int64_t>(*n, std::numeric_limits<int>::max()));
        }
    }
    try {
        sampling::validate(s);
    } catch (const usage_error& e) {
        throw http_error(400, e.what());
    }
}

std::shared_ptr<const sampling::grammar> schema_grammar(const json& schema, const std::string& field) {
    if (!schema.is_object() && !schema.is_boolean())
        throw http_error(400, fmt::format("'{}' must be a JSON schema object, got {}", field, type_of(schema)));
    try {
        return sampling::json_schema_to_grammar(schema);
    } catch (const sampling::json_schema_error& e) {
        throw http_error(400, fmt::format("'{}': {}", field, e.what()));
    }
}

std::string rfc3339_now() {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const std::time_t t = system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    const auto us = duration_cast<microseconds>(now.time_since_epoch()).count() % 1000000;
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, us);
}

int64_t unix_now() {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

// ---- server core ----

server::impl::impl(std::unique_ptr<engine::engine> e, std::string path, server_params params,
                   std::unique_ptr<engine::engine> d)
    : eng(std::move(e)), draft(std::move(d)), model_path(std::move(path)), p(std::move(params)) {
    lm = eng->shared_model();
    // A draft model proposes inside the batched loop, for every --parallel sequence at once.
    engine::speculation_params spec;
    if (draft)
        spec = {0, p.spec.draft_max, std::max(1, p.spec.draft_min), engine::make_model_drafter(*eng, *draft)};
    sched = eng->make_scheduler(p.max_queue, std::move(spec));
    init_http(p.n_http_threads > 0 ? p.n_http_threads
                                   : static_cast<int>(std::min<size_t>(
                                         256, static_cast<size_t>(eng->kv().n_seq()) + p.max_queue + 8)));
}

server::impl::impl(std::shared_ptr<const engine::loaded_model> encoder, std::string path, server_params params)
    : lm(std::move(encoder)), model_path(std::move(path)), p(std::move(params)) {
    init_http(p.n_http_threads > 0 ? p.n_http_threads : static_cast<int>(std::min<size_t>(256, p.max_queue + 8)));
}

void server::impl::init_http(int n_threads) {
    if (p.model_name.empty()) p.model_name = std::filesystem::path(model_path).stem().string();
    started_unix = unix_now();
    http::limits lim;
    lim.max_body = p.max_body_bytes;
    lim.max_decompressed = p.max_decompressed_bytes;
    lim.max_header_count = p.max_header_count;
    lim.max_header_bytes = p.max_header_bytes;
    lim.read_timeout_s = p.read_timeout_s;
    lim.idle_timeout_s = p.idle_timeout_s;
    lim.max_connections = p.max_connections;
    lim.max_connections_per_client = p.max_connections_per_client;
    lim.shutdown_timeout_s = p.shutdown_timeout_s;
    lim.n_workers = n_threads;
    http_srv = std::make_unique<http::server>(lim);
    // Host and Origin checks before any route (CSRF and DNS rebinding; see access.h), and CORS
    // preflight answers for the origins that pass.
    http_srv->set_pre_routing([this](const http::request& req, http::response& res) {
        const api a = req.path.rfind("/v1/", 0) == 0 ? api::openai : api::ollama;
        auto refuse = [&](const std::string& msg) {
            ++http_requests;
            ++http_errors;
            log::info("{} {} -> 403: {}", req.method, req.path, msg);
            res.status = 403;
            res.set_content(error_json(a, 403, msg, "permission_error").dump(-1, ' ', false, json::error_handler_t::replace),
                            "application/json");
            return true;
        };
        const std::string host = req.get_header_value("Host");
        if (!host_allowed(host, p.host))
            return refuse(fmt::format("Host '{}' is not allowed: this server listens on {} and answers loopback names "
                                      "only (DNS rebinding protection); use http://localhost:PORT or --host",
                                      host, p.host));
        const std::string origin = req.get_header_value("Origin");
        if (!origin.empty()) {
            if (!origin_allowed(origin, p.host, p.allowed_origins))
                return refuse(fmt::format("origin '{}' is not allowed (a web page may not use this server unless "
                                          "started with --allowed-origins {})",
                                          origin, origin));
            res.set_header("Access-Control-Allow-Origin", origin);
            res.set_header("Vary", "Origin");
            if (req.method == "OPTIONS") {
                res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
                res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
                res.set_header("Access-Control-Max-Age", "600");
                res.status = 204;
                return true;
            }
        }
        return false;
    });
    // The layer's own errors (malformed requests, limits, unknown routes), in the route's API shape.
    http_srv->set_error_renderer([this](const http::request& req, http::response& res, const http::layer_error& e) {
        ++http_requests;
        ++http_errors;
        const api a = req.path.rfind("/v1/", 0) == 0 ? api::openai : api::ollama;
        const std::string what = req.method.empty() ? e.message : fmt::format("{} {}: {}", req.method, req.path, e.message);
        if (e.status != 404) log::info("HTTP {}: {}", e.status, what);
        const char* type = e.status == 503 ? "server_busy" : e.status >= 500 ? "server_error" : "invalid_request_error";
        res.status = e.status;
        res.set_content(error_json(a, e.status, what, type).dump(-1, ' ', false, json::error_handler_t::replace),
                        "application/json");
    });
    add_common_routes();
    add_ollama_routes();
    add_store_routes();
    add_openai_routes();
    add_embed_routes();
}

int server::impl::embed_threads() const {
    if (p.embed_threads > 0) return p.embed_threads;
    if (eng) return eng->params().n_threads;
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

namespace {
// How long a non-streaming request is waited for before its response turns into a chunked body
// with keep-alive spaces (see respond_job), and the interval of those spaces.
constexpr auto k_blocking_wait = std::chrono::milliseconds(1000);
constexpr auto k_keepalive_interval = std::chrono::milliseconds(1000);

}  // namespace

http::handler server::impl::wrap(api a, std::function<void(const http::request&, http::response&)> fn,
                                            bool needs_auth) {
    return [this, a, fn = std::move(fn), needs_auth](const http::request& req, http::response& res) {
        ++http_requests;
        int status = 500;
        std::string msg, type = "server_error";
        try {
            if (needs_auth && !p.api_key.empty() && !bearer_matches(req.get_header_value("Authorization"), p.api_key))
                throw http_error(401, "missing or wrong API key (send 'Authorization: Bearer KEY')",
                                 "authentication_error");
            fn(req, res);
            return;
        } catch (const http_error& e) {
            status = e.status();
            msg = e.what();
            type = e.type();
        } catch (const engine::queue_full& e) {
            status = 503;
            msg = e.what();
            type = "server_busy";
        } catch (const usage_error& e) {
            status = 400;
            msg = e.what();
            type = "invalid_request_error";
        } catch (const std::exception& e) {
            status = 500;
            msg = e.what();
        }
        ++http_errors;
        log::info("{} {} -> {}: {}", req.method, req.path, status, msg);
        const json body = error_json(a, status, msg, type);
        res.status = status;
        res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    };
}

void server::impl::post(const std::string& path, api a, http::handler handler) {
    // The HTTP layer reads every body in full, up to --max-body, whatever its Content-Type (a JSON
    // body sent as application/x-www-form-urlencoded by curl -d is not parsed, or limited, as a form).
    (void)a;
    http_srv->route("POST", path, std::move(handler));
}

std::string server::impl::body_too_large_message() const {
    return fmt::format("the request body is larger than this server's limit of {} bytes (raise it with --max-body)",
                       p.max_body_bytes);
}

void server::impl::check_model(const json& body, api a, bool required) const {
    const std::optional<std::string> m = opt_string(body, "model");
    if (!m || m->empty()) {
        if (required) throw http_error(400, "'model' is required");
        return;
    }
    const std::string& name = p.model_name;
    if (*m == name || *m == name + ":latest" || *m == model_path ||
        *m == std::filesystem::path(model_path).filename().string())
        return;
    if (a == api::openai)
        throw http_error(404, fmt::format("the model '{}' does not exist; this server serves '{}'", *m, name),
                         "model_not_found");
    throw http_error(404, fmt::format("model '{}' not found; this server serves '{}'", *m, name));
}

bool server::impl::has_own_template() const {
    return !p.chat_template.empty() || lm->get_model().file().get_string_opt("tokenizer.chat_template").has_value();
}

const chat::chat_template& server::impl::chat_template_locked() {
    if (!tmpl) {
        std::optional<std::string> override;
        if (!p.chat_template.empty()) override = p.chat_template;
        tmpl.emplace(engine::model_chat_template(*lm, override));
    }
    return *tmpl;
}

void server::impl::template_tool_info(tool_state& ts) {
    std::lock_guard lock(tmpl_mu);
    const std::string& src = chat_template_locked().source();
    ts.fmt = chat::detect_tool_format(src);
    ts.reads_tools = chat::template_reads_tools(src);
}

std::vector<int32_t> server::impl::chat_prompt(const std::vector<chat::chat_message>& msgs, const json& extra_context) {
    require_generation();
    std::lock_guard lock(tmpl_mu);
    const chat::chat_template& t = chat_template_locked();
    try {
        return engine::encode_chat(*lm, t, msgs, extra_context);
    } catch (const usage_error&) {
        throw;
    } catch (const error& e) {
        throw http_error(400, fmt::format("the chat template failed on these messages: {}", e.what()));
    }
}

std::vector<int32_t> server::impl::text_prompt(const std::string& text) const {
    engine::text_codec codec(lm);
    return codec.encode_prompt(text);
}

void server::impl::require_generation() const {
    if (!sched)
        throw http_error(400, fmt::format("model '{}' is an embedding model (an encoder): it does not generate text; "
                                          "use /api/embed or /v1/embeddings",
                                          p.model_name));
}

std::shared_ptr<job> server::impl::start(gen_input in, std::shared_ptr<job_sync> sync, int index) {
    require_generation();
    auto j = std::make_shared<job>();
    if (sync) j->sync = std::move(sync);
    j->index = index;
    j->t_start_ms = now_ms();
    j->codec = std::make_unique<engine::text_codec>(lm);
    j->codec->prime(in.prompt);
    j->stops = std::make_unique<engine::stop_filter>(std::move(in.stop));
    engine::request r;
    r.prompt = std::move(in.prompt);
    r.gp = std::move(in.gp);
    // Both callbacks run on the engine thread; the job outlives them through the captures.
    r.on_token = [j](int32_t tok) {
        const std::string out = j->stops->push(j->codec->push(tok));
        if (!out.empty() || !j->started) {
            std::lock_guard lock(j->sync->mu);
            j->pending += out;
            j->started = true;
            j->sync->cv.notify_all();
        }
        return !j->stops->stopped() && !j->client_gone.load();
    };
    if (r.gp.logprobs >= 0)
        r.on_logprob = [j](const sampling::token_logprob& lp) {
            std::lock_guard lock(j->sync->mu);
            j->logprobs.push_back(lp);
        };
    r.on_done = [j](const engine::sequence_result& res) {
        std::string tail;
        if (!j->stops->stopped()) tail = j->stops->push(j->codec->flush()) + j->stops->flush();
        std::lock_guard lock(j->sync->mu);
        j->pending += tail;
        j->res = res;
        j->res.logprobs.clear();  // the job has its own copy
        j->stop = engine::with_stop_string(res.stop, j->stops->stopped());
        j->done = true;
        j->sync->cv.notify_all();
    };
    try {
        j->id = sched->submit(std::move(r));
    } catch (const engine::queue_full&) {
        throw;
    } catch (const usage_error& e) {
        throw http_error(400, e.what());
    }
    return j;
}

std::vector<std::shared_ptr<job>> server::impl::start_n(const gen_input& in, int n) {
    jobs js;
    auto sync = std::make_shared<job_sync>();
    try {
        for (int i = 0; i < n; ++i) {
            gen_input one = in;
            one.gp.sampling.seed = in.gp.sampling.seed + static_cast<uint64_t>(i);
            js.push_back(start(std::move(one), sync, i));
            if (i == 0 && n > 1 && eng->params().prefix_cache) {
                // The other choices share the prompt's KV: they start once the first has evaluated
                // the prompt, whose full blocks are then in the prefix cache, so each of them
                // evaluates only the prompt's last partial block.
                std::unique_lock lock(sync->mu);
                sync->cv.wait(lock, [&] { return js[0]->started || js[0]->done; });
            }
        }
    } catch (...) {
        for (auto& j : js) {
            j->client_gone = true;
            sched->cancel(j->id);
        }
        throw;
    }
    return js;
}

namespace {
bool all_done(const std::vector<std::shared_ptr<job>>& js) {
    for (const auto& j : js)
        if (!j->done) return false;
    return true;
}
const job* failed(const std::vector<std::shared_ptr<job>>& js) {
    for (const auto& j : js)
        if (j->stop == engine::stop_reason::error) return j.get();
    return nullptr;
}
}  // namespace

void server::impl::end_by_server(const jobs& js) {
    for (const auto& j : js)
        if (!j->ended_by_server.exchange(true)) sched->cancel(j->id);
}

void server::impl::respond_job(http::response& res, const std::shared_ptr<job>& j, api a,
                               std::function<json(const job& j)> body) {
    respond_jobs(res, {j}, a, [body = std::move(body)](const jobs& js) { return body(*js[0]); });
}

void server::impl::respond_jobs(http::response& res, jobs js, api a, std::function<json(const jobs& js)> body) {
    const std::shared_ptr<job_sync> sync = js[0]->sync;
    bool done = false;
    {
        std::unique_lock lock(sync->mu);
        done = sync->cv.wait_for(lock, k_blocking_wait, [&] { return all_done(js); });
    }
    auto cancel_all = [this](const jobs& all) {
        for (const auto& j : all) {
            j->client_gone = true;
            sched->cancel(j->id);
        }
    };
    auto end_all = [this](const jobs& all) { end_by_server(all); };
    if (done) {
        if (const job* f = failed(js)) throw http_error(500, "generation failed: " + f->res.error, "server_error");
        res.set_content(body(js).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
        return;
    }
    // The status line is sent with the first space, so a later failure is reported in the body.
    res.set_chunked_content_provider(
        "application/json",
        [js, sync, a, body = std::move(body), cancel_all, end_all](http::data_sink& sink) {
            if (sink.stopping()) end_all(js);  // the server is shutting down: the reply so far, as "length"
            bool finished = false;
            {
                std::unique_lock lock(sync->mu);
                finished = sync->cv.wait_for(lock, k_keepalive_interval, [&] { return all_done(js); });
            }
            std::string out = " ";
            if (finished) {
                const job* f = failed(js);
                const json o = f ? error_json(a, 500, "generation failed: " + f->res.error, "server_error") : body(js);
                out = o.dump(-1, ' ', false, json::error_handler_t::replace);
            }
            if (!sink.write(out.data(), out.size())) {
                cancel_all(js);
                return false;
            }
            if (finished) sink.done();
            return true;
        },
        [js, cancel_all](bool success) {
            if (!success) cancel_all(js);
        });
}

void server::impl::stream_job(http::response& res, const std::shared_ptr<job>& j, const char* content_type,
                          std::function<std::string(const std::string& piece)> chunk,
                          std::function<std::string(const job& j)> last) {
    stream_jobs(
        res, {j}, content_type,
        [chunk = std::move(chunk)](const job&, const std::string& piece, lp_span) {
            return piece.empty() ? std::string() : chunk(piece);
        },
        std::move(last), [] { return std::string(); });
}

void server::impl::stream_jobs(http::response& res, jobs js, const char* content_type,
                               std::function<std::string(const job& j, const std::string& piece, lp_span lps)> chunk,
                               std::function<std::string(const job& j)> last, std::function<std::string()> end) {
    const std::shared_ptr<job_sync> sync = js[0]->sync;
    auto cancel_all = [this](const jobs& all) {
        for (const auto& j : all) {
            j->client_gone = true;
            sched->cancel(j->id);
        }
    };
    auto closed = std::make_shared<std::vector<bool>>(js.size(), false);  // last() sent
    auto end_all = [this](const jobs& all) { end_by_server(all); };
    res.set_chunked_content_provider(
        content_type,
        [js, sync, closed, cancel_all, end_all, chunk = std::move(chunk), last = std::move(last),
         end = std::move(end)](http::data_sink& sink) {
            struct taken {
                std::string piece;
                std::vector<sampling::token_logprob> lps;
                bool done = false;
            };
            // The server is shutting down: each job ends now and its final record follows.
            if (sink.stopping()) end_all(js);
            std::vector<taken> t(js.size());
            bool all = true;
            {
                std::unique_lock lock(sync->mu);
                sync->cv.wait_for(lock, std::chrono::milliseconds(100), [&] {
                    for (size_t i = 0; i < js.size(); ++i)
                        if (!(*closed)[i] && (js[i]->done || !js[i]->pending.empty())) return true;
                    return false;
                });
                for (size_t i = 0; i < js.size(); ++i) {
                    job& j = *js[i];
                    t[i].piece.swap(j.pending);
                    t[i].lps.assign(j.logprobs.begin() + static_cast<std::ptrdiff_t>(j.logprobs_sent), j.logprobs.end());
                    j.logprobs_sent = j.logprobs.size();
                    t[i].done = j.done;
                    all = all && (j.done || (*closed)[i]);
                }
            }
            std::string out;
            for (size_t i = 0; i < js.size(); ++i) {
                if ((*closed)[i]) continue;
                if (t[i].done) {
                    // The rest of the text, then the closing record.
                    if (!t[i].piece.empty() || !t[i].lps.empty()) out += chunk(*js[i], t[i].piece, t[i].lps);
                    out += last(*js[i]);
                    (*closed)[i] = true;
                } else if (!t[i].piece.empty() || !t[i].lps.empty()) {
                    out += chunk(*js[i], t[i].piece, t[i].lps);
                }
            }
            if (all) out += end();
            if (!out.empty() && !sink.write(out.data(), out.size())) {
                cancel_all(js);
                return false;
            }
            if (out.empty() && !sink.is_writable()) {
                cancel_all(js);
                return false;
            }
            if (all) sink.done();
            return true;
        },
        [js, cancel_all](bool success) {
            if (!success) cancel_all(js);
        });
}

json server::impl::model_details() const {
    const gguf::file& f = lm->get_model().file();
    const auto& hp = lm->hparams();
    const std::string quant = gguf::quantization_level(f);
    uint64_t n_params = 0;
    for (const auto& t : f.tensors()) n_params += static_cast<uint64_t>(t.n_elements());
    return {{"parent_model", ""},
            {"format", "gguf"},
            {"family", hp.arch},
            {"families", json::array({hp.arch})},
            {"parameter_size", n_params >= 1000000000 ? fmt::format("{:.1f}B", static_cast<double>(n_params) / 1e9)
                                                    : fmt::format("{:.2f}M", static_cast<double>(n_params) / 1e6)},
            {"quantization_level", quant}};
}

std::string server::impl::metrics_text() const {
    std::string out;
    auto add = [&out](const char* name, const char* type, const char* help, auto value) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
    };
    if (!sched) {  // an encoder served alone: no generation scheduler
        add("edgellm_http_requests_total", "counter", "HTTP requests received.", http_requests.load());
        add("edgellm_http_errors_total", "counter", "HTTP requests answered with an error.", http_errors.load());
        return out;
    }
    const engine::scheduler_metrics& m = sched->metrics();
    add("edgellm_requests_total", "counter", "Generation requests accepted.", m.requests_submitted.load());
    add("edgellm_requests_finished_total", "counter", "Generation requests finished (any reason).",
        m.requests_finished.load());
    add("edgellm_requests_cancelled_total", "counter", "Requests cancelled (client gone).", m.requests_cancelled.load());
    add("edgellm_requests_rejected_total", "counter", "Requests refused because the queue was full.",
        m.requests_rejected.load());
    add("edgellm_http_requests_total", "counter", "HTTP requests received.", http_requests.load());
    add("edgellm_http_errors_total", "counter", "HTTP requests answered with an error.", http_errors.load());
    add("edgellm_prompt_tokens_total", "counter", "Prompt tokens evaluated.", m.prompt_tokens.load());
    add("edgellm_generated_tokens_total", "counter", "Tokens generated.", m.generated_tokens.load());
    add("edgellm_forward_passes_total", "counter", "Batched forward passes.", m.steps.load());
    add("edgellm_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.", m.preemptions.load());
    add("edgellm_queue_depth", "gauge", "Requests waiting for a slot.", m.waiting.load());
    add("edgellm_running_sequences", "gauge", "Sequences in the running batch.", m.running.load());
    add("edgellm_batch_tokens", "gauge", "Tokens in the last forward pass.", m.last_batch_tokens.load());
    add("edgellm_batch_sequences", "gauge", "Sequences in the last forward pass.", m.last_batch_seqs.load());
    add("edgellm_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", m.kv_blocks_used.load());
    add("edgellm_kv_blocks_total", "gauge", "KV cache blocks in the pool.", m.kv_blocks_total.load());
    add("edgellm_kv_block_size", "gauge", "Positions per KV cache block.", model::k_kv_block_size);
    add("edgellm_kv_cache_bytes", "gauge",
        "KV cache allocation in bytes (sliding-window layers: their window-sized pool unless --swa-full).",
        m.kv_bytes.load());
    add("edgellm_kv_blocks_cached", "gauge", "KV cache blocks holding a reusable prompt prefix (prefix cache).",
        m.kv_blocks_cached.load());
    add("edgellm_prefix_cache_hit_tokens_total", "counter", "Prompt tokens whose KV was reused from the prefix cache.",
        m.prefix_hit_tokens.load());
    add("edgellm_prefix_cache_hit_blocks_total", "counter", "KV blocks reused from the prefix cache.",
        m.prefix_hit_blocks.load());
    add("edgellm_draft_tokens_total", "counter", "Tokens proposed by the draft model (speculative decoding).",
        m.draft_tokens.load());
    add("edgellm_draft_accepted_total", "counter", "Drafted tokens the target model kept.", m.draft_accepted.load());
    return out;
}

void server::impl::add_common_routes() {
    http_srv->route("GET", "/health", wrap(api::plain, [](const http::request&, http::response& res) {
                 res.set_content(R"({"status":"ok"})", "application/json");
             }, /*needs_auth=*/false));
    http_srv->route("GET", "/metrics", wrap(api::plain, [this](const http::request&, http::response& res) {
                 res.set_content(metrics_text(), "text/plain; version=0.0.4");
             }));
    // A browser (Accept: text/html) gets the chat page; curl and Ollama clients probing GET / get
    // the one line they expect. The page holds no secret, so it needs no key; its API calls do.
    http_srv->route("GET", "/", wrap(api::plain, [this](const http::request& req, http::response& res) {
                 if (!p.webui || req.get_header_value("Accept").find("text/html") == std::string::npos) {
                     res.set_content("edgellm is running (Ollama and OpenAI APIs)", "text/plain");
                     return;
                 }
                 res.set_header("Content-Security-Policy",
                                "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'");
                 res.set_header("X-Content-Type-Options", "nosniff");
                 res.set_header("Referrer-Policy", "no-referrer");
                 res.set_header("Cache-Control", "no-cache");
                 const auto page = assets::webui_index_html();
                 res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
             }, /*needs_auth=*/false));
    if (p.webui) {
        http_srv->route("GET", "/webui.js", wrap(api::plain, [](const http::request&, http::response& res) {
                     res.set_header("X-Content-Type-Options", "nosniff");
                     res.set_header("Cache-Control", "no-cache");
                     const auto js = assets::webui_js();
                     res.set_content(js.data(), js.size(), "text/javascript; charset=utf-8");
                 }, /*needs_auth=*/false));
    }
}

// ---- public ----

server::server(std::unique_ptr<engine::engine> eng, std::string model_path, server_params p,
               std::unique_ptr<engine::engine> draft)
    : impl_(std::make_unique<impl>(std::move(eng), std::move(model_path), std::move(p), std::move(draft))) {}

server::server(std::shared_ptr<const engine::loaded_model> encoder, std::string model_path, server_params p)
    : impl_(std::make_unique<impl>(std::move(encoder), std::move(model_path), std::move(p))) {}

server::~server() {
    stop();
    if (impl_->engine_thread.joinable()) impl_->engine_thread.join();
}

int server::bind() {
    const int port = impl_->http_srv->bind(impl_->p.host, impl_->p.port);
    if (port < 0)
        throw usage_error(fmt::format("cannot listen on {}:{} (address in use, or not an address of this machine)",
                                      impl_->p.host, impl_->p.port));
    impl_->p.port = port;
    return port;
}

void server::listen() {
    if (!impl_->sched) {  // embeddings only: requests run on the HTTP threads
        impl_->http_srv->listen();
        return;
    }
    impl_->engine_thread = std::thread([this] { impl_->sched->serve(); });
    // Returns once stop() has drained every connection: the scheduler runs until then, so
    // streams end with their final records.
    impl_->http_srv->listen();
    impl_->sched->stop();
    impl_->engine_thread.join();
}

void server::stop() {
    impl_->http_srv->stop();
    // The scheduler stops when listen() has drained the connections (or now, if it never ran).
}

}  // namespace edgellm::server
