// The server core: the engine thread running the scheduler, the bridge that turns a request
// into a scheduler sequence and streams its text back, the error wrapper every route goes
// through, request-field readers, /health and Prometheus /metrics.
#include "server/server.h"

#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <filesystem>

#include "core/log.h"
#include "core/timing.h"
#include "engine/speculative.h"
#include "gguf/gguf_summary.h"
#include "sampling/json_schema.h"
#include "server/server_impl.h"

namespace edgellm::server {

// ---- field readers ----

namespace {
const char* type_of(const json& v) { return v.type_name(); }
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
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_number_float()) {
        const double d = it->get<double>();
        if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
    }
    throw http_error(400, fmt::format("'{}' must be an integer, got {}", key, type_of(*it)));
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

json parse_body(const httplib::Request& req) {
    json body;
    try {
        body = json::parse(req.body);
    } catch (const json::parse_error& e) {
        throw http_error(400, fmt::format("malformed JSON in the request body: {}", e.what()));
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
        out.push_back({*role, content, {}});
    }
    return out;
}

void read_sampling(const json& o, engine::generation_params& gp, bool ollama_names) {
    auto& s = gp.sampling;
    if (auto v = opt_number(o, "temperature")) s.temperature = static_cast<float>(*v);
    if (auto v = opt_number(o, "top_p")) s.top_p = static_cast<float>(*v);
    if (auto v = opt_number(o, "min_p")) s.min_p = static_cast<float>(*v);
    if (auto v = opt_int(o, "top_k")) s.top_k = static_cast<int>(*v);
    if (auto v = opt_number(o, "repeat_penalty")) s.repeat_penalty = static_cast<float>(*v);
    if (auto v = opt_int(o, "repeat_last_n")) s.penalty_last_n = static_cast<int>(*v);
    if (auto v = opt_number(o, "frequency_penalty")) s.frequency_penalty = static_cast<float>(*v);
    if (auto v = opt_number(o, "presence_penalty")) s.presence_penalty = static_cast<float>(*v);
    // No seed: a fresh one, so repeated requests sample afresh (as OpenAI and Ollama do).
    const std::optional<int64_t> seed = opt_int(o, "seed");
    s.seed = seed ? static_cast<uint64_t>(*seed) : sampling::random_seed();
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
    if (s.top_k < 0) throw http_error(400, fmt::format("'top_k' must be >= 0, got {}", s.top_k));
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
    engine::exclusive_runner spec;
    if (draft) spec = engine::speculative_runner(*eng, *draft, p.spec);
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
    http.new_task_queue = [n_threads] { return new httplib::ThreadPool(static_cast<size_t>(n_threads)); };
    http.set_payload_max_length(p.max_body_bytes);
    // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which lets a second server
    // bind the same port silently instead of failing.
    http.set_socket_options([](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    add_common_routes();
    add_ollama_routes();
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

json error_json(api a, int status, const std::string& msg, const std::string& type) {
    if (a == api::openai) return {{"error", {{"message", msg}, {"type", type}, {"param", nullptr}, {"code", status}}}};
    return {{"error", msg}};
}
}  // namespace

httplib::Server::Handler server::impl::wrap(api a, std::function<void(const httplib::Request&, httplib::Response&)> fn,
                                            bool needs_auth) {
    return [this, a, fn = std::move(fn), needs_auth](const httplib::Request& req, httplib::Response& res) {
        ++http_requests;
        int status = 500;
        std::string msg, type = "server_error";
        try {
            if (needs_auth && !p.api_key.empty() && req.get_header_value("Authorization") != "Bearer " + p.api_key)
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

void server::impl::post(const std::string& path, api a, httplib::Server::Handler handler) {
    // A content-reader route: the body is read here whatever its Content-Type, so a JSON body
    // sent as application/x-www-form-urlencoded (curl -d) is not parsed, or limited, as a form.
    http.Post(path, [this, a, handler](const httplib::Request& req, httplib::Response& res,
                                       const httplib::ContentReader& reader) {
        httplib::Request full = req;
        bool too_big = false;
        const bool read = reader([&](const char* data, size_t n) {
            if (full.body.size() + n > p.max_body_bytes) {
                too_big = true;
                return false;
            }
            full.body.append(data, n);
            return true;
        });
        // httplib refuses a Content-Length above the limit before reading any of it.
        if (!read && !too_big && req.get_header_value<uint64_t>("Content-Length") > p.max_body_bytes) too_big = true;
        if (!too_big) {
            handler(full, res);
            return;
        }
        ++http_requests;
        ++http_errors;
        res.status = 413;
        res.set_content(error_json(a, 413, body_too_large_message(), "invalid_request_error").dump(), "application/json");
    });
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

std::vector<int32_t> server::impl::chat_prompt(const std::vector<chat::chat_message>& msgs) {
    require_generation();
    std::lock_guard lock(tmpl_mu);
    if (!tmpl) {
        std::optional<std::string> override;
        if (!p.chat_template.empty()) override = p.chat_template;
        tmpl.emplace(engine::model_chat_template(*lm, override));
    }
    try {
        return engine::encode_chat(*lm, *tmpl, msgs);
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

std::shared_ptr<job> server::impl::start(gen_input in) {
    require_generation();
    auto j = std::make_shared<job>();
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
        if (!out.empty()) {
            std::lock_guard lock(j->mu);
            j->pending += out;
            j->cv.notify_all();
        }
        return !j->stops->stopped() && !j->client_gone.load();
    };
    r.on_done = [j](const engine::sequence_result& res) {
        std::string tail;
        if (!j->stops->stopped()) tail = j->stops->push(j->codec->flush()) + j->stops->flush();
        std::lock_guard lock(j->mu);
        j->pending += tail;
        j->res = res;
        if (j->stops->stopped() || res.stop_reason == "eos")
            j->finish_reason = "stop";
        else if (res.stop_reason == "length" || res.stop_reason == "context")
            j->finish_reason = "length";
        else
            j->finish_reason = res.stop_reason;
        j->done = true;
        j->cv.notify_all();
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

void server::impl::respond_job(httplib::Response& res, const std::shared_ptr<job>& j, api a,
                               std::function<json(const job& j)> body) {
    bool done = false;
    {
        std::unique_lock lock(j->mu);
        done = j->cv.wait_for(lock, k_blocking_wait, [&] { return j->done; });
    }
    if (done) {
        if (j->finish_reason == "error") throw http_error(500, "generation failed: " + j->res.error, "server_error");
        res.set_content(body(*j).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
        return;
    }
    // The status line is sent with the first space, so a later failure is reported in the body.
    res.set_chunked_content_provider(
        "application/json",
        [this, j, a, body = std::move(body)](size_t, httplib::DataSink& sink) {
            bool finished = false;
            {
                std::unique_lock lock(j->mu);
                finished = j->cv.wait_for(lock, k_keepalive_interval, [&] { return j->done; });
            }
            std::string out = " ";
            if (finished) {
                const json o = j->finish_reason == "error"
                                   ? error_json(a, 500, "generation failed: " + j->res.error, "server_error")
                                   : body(*j);
                out = o.dump(-1, ' ', false, json::error_handler_t::replace);
            }
            if (!sink.write(out.data(), out.size())) {
                j->client_gone = true;
                sched->cancel(j->id);
                return false;
            }
            if (finished) sink.done();
            return true;
        },
        [this, j](bool success) {
            if (!success) {
                j->client_gone = true;
                sched->cancel(j->id);
            }
        });
}

void server::impl::stream_job(httplib::Response& res, const std::shared_ptr<job>& j, const char* content_type,
                          std::function<std::string(const std::string& piece)> chunk,
                          std::function<std::string(const job& j)> last) {
    res.set_chunked_content_provider(
        content_type,
        [this, j, chunk = std::move(chunk), last = std::move(last)](size_t, httplib::DataSink& sink) {
            std::string piece;
            bool done = false;
            {
                std::unique_lock lock(j->mu);
                j->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return j->done || !j->pending.empty(); });
                piece.swap(j->pending);
                done = j->done;
            }
            std::string out;
            if (!piece.empty()) out += chunk(piece);
            if (done) out += last(*j);
            if (!out.empty() && !sink.write(out.data(), out.size())) {
                j->client_gone = true;
                sched->cancel(j->id);
                return false;
            }
            if (out.empty() && !sink.is_writable()) {
                j->client_gone = true;
                sched->cancel(j->id);
                return false;
            }
            if (done) sink.done();
            return true;
        },
        [this, j](bool success) {
            if (!success) {
                j->client_gone = true;
                sched->cancel(j->id);
            }
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
    add("edgellm_draft_tokens_total", "counter", "Tokens proposed by the draft model (speculative decoding).",
        m.draft_tokens.load());
    add("edgellm_draft_accepted_total", "counter", "Drafted tokens the target model kept.", m.draft_accepted.load());
    return out;
}

void server::impl::add_common_routes() {
    http.Get("/health", wrap(api::plain, [](const httplib::Request&, httplib::Response& res) {
                 res.set_content(R"({"status":"ok"})", "application/json");
             }, /*needs_auth=*/false));
    http.Get("/metrics", wrap(api::plain, [this](const httplib::Request&, httplib::Response& res) {
                 res.set_content(metrics_text(), "text/plain; version=0.0.4");
             }));
    http.Get("/", wrap(api::plain, [](const httplib::Request&, httplib::Response& res) {
                 res.set_content("edgellm is running (Ollama and OpenAI APIs)", "text/plain");
             }, /*needs_auth=*/false));
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        const std::string what = res.status == 404   ? "no such route"
                                 : res.status == 413 ? body_too_large_message()
                                                     : fmt::format("HTTP status {}", res.status);
        json body = {{"error", fmt::format("{} {}: {}", req.method, req.path, what)}};
        res.set_content(body.dump(), "application/json");
    });
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
    const int port = impl_->p.port == 0 ? impl_->http.bind_to_any_port(impl_->p.host)
                                        : (impl_->http.bind_to_port(impl_->p.host, impl_->p.port) ? impl_->p.port : -1);
    if (port < 0)
        throw usage_error(fmt::format("cannot listen on {}:{} (address in use, or not an address of this machine)",
                                      impl_->p.host, impl_->p.port));
    impl_->p.port = port;
    return port;
}

void server::listen() {
    if (!impl_->sched) {  // embeddings only: requests run on the HTTP threads
        impl_->http.listen_after_bind();
        return;
    }
    impl_->engine_thread = std::thread([this] { impl_->sched->serve(); });
    impl_->http.listen_after_bind();
    impl_->sched->stop();
    impl_->engine_thread.join();
}

void server::stop() {
    impl_->http.stop();
    if (impl_->sched) impl_->sched->stop();
}

}  // namespace edgellm::server
