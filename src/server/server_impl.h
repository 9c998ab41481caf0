// Internals shared by the server's route files: the server state, a generation job (the bridge
// between an HTTP thread and the engine thread), request-field readers that turn wrong types
// into 400s, and the error type handlers throw.
#pragma once
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "chat/chat_template.h"
#include "chat/tool_calls.h"
#include "engine/embed.h"
#include "engine/engine.h"
#include "engine/scheduler.h"
#include "engine/text.h"
#include "server/http.h"
#include "server/server.h"

namespace edgellm::server {

using json = nlohmann::ordered_json;

// An error with its HTTP status; handlers throw it, the route wrapper renders it.
class http_error : public error {
public:
    http_error(int status, const std::string& msg, std::string type = "invalid_request_error")
        : error(msg), status_(status), type_(std::move(type)) {}
    int status() const { return status_; }
    const std::string& type() const { return type_; }

private:
    int status_;
    std::string type_;
};

// Which API a route belongs to: errors are shaped as that API's clients expect.
enum class api { ollama, openai, plain };

// What a route asks the engine for.
struct gen_input {
    std::vector<int32_t> prompt;
    engine::generation_params gp;
    std::vector<std::string> stop;
};

// The lock and wake-up of a job, shared by the jobs of one request (OpenAI `n` > 1) so one
// HTTP thread can wait for any of them.
struct job_sync {
    std::mutex mu;
    std::condition_variable cv;
};

// One generation: filled by the engine thread (text, end), drained by the HTTP thread.
struct job {
    uint64_t id = 0;
    int index = 0;  // its choice in the request (`n` > 1)
    std::shared_ptr<job_sync> sync = std::make_shared<job_sync>();
    std::string pending;  // text not yet sent
    bool done = false;
    bool started = false;  // a first token was generated: the prompt is evaluated (its KV blocks cached)
    engine::sequence_result res;
    // How it ended, stop strings included (engine::with_stop_string); the routes name it with
    // engine::openai_finish_reason / engine::ollama_done_reason.
    engine::stop_reason stop = engine::stop_reason::none;
    std::atomic<bool> client_gone{false};
    // Ended by the server's shutdown (not by the client): reported as "length", the text cut short.
    std::atomic<bool> ended_by_server{false};
    double t_start_ms = 0;
    // With gp.logprobs >= 0: a record per generated token (engine thread appends under the
    // lock); `logprobs_sent` is how many a stream has sent (HTTP thread only).
    std::vector<sampling::token_logprob> logprobs;
    size_t logprobs_sent = 0;
    // Engine thread only.
    std::unique_ptr<engine::text_codec> codec;
    std::unique_ptr<engine::stop_filter> stops;
};

// The tools of one chat request: which format the reply is parsed in, and whether it is.
struct tool_state {
    bool active = false;  // tools given and tool_choice is not "none": the reply is parsed for calls
    chat::tool_format fmt = chat::tool_format::generic;
    bool reads_tools = true;  // the template lists the tools (the `tools` variable)
};

// A finished reply split into text and calls (ids assigned), for the response bodies.
struct tool_reply {
    std::string content;
    std::vector<chat::tool_call> calls;
};
tool_reply split_reply(const tool_state& ts, const std::string& text);

struct server::impl {
    impl(std::unique_ptr<engine::engine> e, std::string path, server_params p, std::unique_ptr<engine::engine> d);
    // An encoder served alone: embeddings only, no engine thread; generation routes answer 400.
    impl(std::shared_ptr<const engine::loaded_model> encoder, std::string path, server_params p);
    void init_http(int n_threads);

    // Routes (api_ollama.cpp, api_openai.cpp, server.cpp).
    void add_ollama_routes();
    void add_openai_routes();
    void add_common_routes();
    void add_store_routes();  // /api/pull, /api/delete (api_store.cpp)
    void add_embed_routes();  // api_embed.cpp
    // Runs one embeddings request (texts or token ids) under embed_mu; usage errors become 400.
    engine::embed_result run_embeddings(const std::vector<std::string>* texts,
                                        const std::vector<std::vector<int32_t>>* ids, const engine::embed_options& o);
    int embed_threads() const;
    // Wraps a handler: auth, error shaping (400/401/404/503/500), request counting.
    http::handler wrap(api a, std::function<void(const http::request&, http::response&)> fn,
                                  bool needs_auth = true);
    // Registers a POST route (a wrap()ped handler) that reads the body itself, up to --max-body.
    void post(const std::string& path, api a, http::handler handler);
    std::string body_too_large_message() const;

    // Queues a generation; throws http_error 503 when the queue is full, 400 for a bad request.
    // Jobs of one request share `sync` (a fresh one when null).
    std::shared_ptr<job> start(gen_input in, std::shared_ptr<job_sync> sync = nullptr, int index = 0);
    // `n` generations of one request (OpenAI `n`): the same prompt, seeds seed, seed+1, ...;
    // if one cannot be queued, those already queued are cancelled.
    std::vector<std::shared_ptr<job>> start_n(const gen_input& in, int n);
    using jobs = std::vector<std::shared_ptr<job>>;
    // 400 when the model cannot generate (an encoder served alone).
    void require_generation() const;
    // Ends the jobs still generating because the server is shutting down: each finishes as
    // "length" with the text so far, and its stream sends its final record.
    void end_by_server(const jobs& js);
    // Non-streaming response: `body` renders the finished job. A job that ends within
    // k_blocking_wait is answered plainly (any error with its status); a longer one is answered
    // as a chunked body that sends a JSON-neutral space every second while it waits, so a client
    // that has gone is noticed (the write fails) and its sequence is cancelled.
    void respond_job(http::response& res, const std::shared_ptr<job>& j, api a,
                     std::function<json(const job& j)> body);
    // The same for the jobs of one request: `body` renders them once all have finished.
    void respond_jobs(http::response& res, jobs js, api a, std::function<json(const jobs& js)> body);
    // Streams a job: `chunk` formats each text piece, `last` the closing record(s); pieces are
    // written as they come, a disconnect cancels the sequence.
    void stream_job(http::response& res, const std::shared_ptr<job>& j, const char* content_type,
                std::function<std::string(const std::string& piece)> chunk,
                std::function<std::string(const job& j)> last);
    // Streams the jobs of one request: `chunk(j, piece, lps)` per text piece of job j with the
    // logprob records that came since its last chunk (either may be empty), `last(j)` once per
    // job when it has finished (after its last chunk), `end()` once after all; a disconnect
    // cancels every one.
    using lp_span = std::span<const sampling::token_logprob>;
    void stream_jobs(http::response& res, jobs js, const char* content_type,
                     std::function<std::string(const job& j, const std::string& piece, lp_span lps)> chunk,
                     std::function<std::string(const job& j)> last, std::function<std::string()> end);

    // The model's name check: 404 for a model this server does not serve.
    void check_model(const json& body, api a, bool required) const;
    // Chat prompt with the model's template (or the --chat-template override).
    std::vector<int32_t> chat_prompt(const std::vector<chat::chat_message>& msgs,
                                     const json& extra_context = json::object());
    // The template (built on first use; tmpl_mu held), and the tool-call format it speaks and
    // whether it lists the tools itself (into ts.fmt, ts.reads_tools).
    const chat::chat_template& chat_template_locked();
    void template_tool_info(tool_state& ts);
    // A chat request's prompt: its messages, with `tools` / `tool_choice` (OpenAI and Ollama
    // shapes) rendered for the template's format and, when a call is forced (or the format is
    // the generic JSON one), the grammar that keeps the reply parseable set on `in`.
    std::vector<int32_t> chat_prompt_with_tools(const json& body, gen_input& in, tool_state& ts);
    bool has_own_template() const;
    std::vector<int32_t> text_prompt(const std::string& text) const;
    std::string metrics_text() const;
    json model_details() const;

    std::unique_ptr<engine::engine> eng;
    std::unique_ptr<engine::engine> draft;  // speculative decoding when set
    std::shared_ptr<const engine::loaded_model> lm;
    std::unique_ptr<engine::scheduler> sched;  // null for an encoder served alone
    std::unique_ptr<engine::embedder> embedder;  // made on the first embeddings request
    std::mutex embed_mu;
    std::string model_path;
    server_params p;
    std::unique_ptr<http::server> http_srv;  // made by init_http
    std::thread engine_thread;
    std::optional<chat::chat_template> tmpl;  // built on first use
    std::mutex tmpl_mu;
    std::atomic<uint64_t> http_requests{0};
    std::atomic<uint64_t> http_errors{0};
    int64_t started_unix = 0;
};

// Field readers: absent -> the default; present with the wrong JSON type -> http_error 400
// naming the field and the type expected.
std::optional<double> opt_number(const json& obj, const char* key);
std::optional<int64_t> opt_int(const json& obj, const char* key);
// opt_int within [lo, hi] (400 naming the field and the range otherwise).
std::optional<int64_t> opt_int_in(const json& obj, const char* key, int64_t lo, int64_t hi);
std::optional<bool> opt_bool(const json& obj, const char* key);
std::optional<std::string> opt_string(const json& obj, const char* key);
// A string or an array of strings ("stop").
std::vector<std::string> opt_strings(const json& obj, const char* key);
// The request body as a JSON object (400 for malformed JSON or a non-object).
json parse_body(const http::request& req);
// Messages [{role, content}] of a chat request.
std::vector<chat::chat_message> parse_messages(const json& body);
// Sampling options shared by both APIs, from an object holding them (Ollama "options", OpenAI body).
// Without "seed" a fresh random one is picked (sampling::random_seed).
void read_sampling(const json& o, engine::generation_params& gp, bool ollama_names);
// The grammar of a JSON schema sent in request field `field` (400 naming the problem).
std::shared_ptr<const sampling::grammar> schema_grammar(const json& schema, const std::string& field);

// The model store's models in /api/tags' shape (api_store.cpp).
json store_tags();

std::string rfc3339_now();
int64_t unix_now();

}  // namespace edgellm::server
