// `edgellm serve`: the Ollama + OpenAI API server over one model, with continuous batching of
// --parallel sequences sharing a paged KV cache of -c positions.
#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <cctype>
#include <filesystem>
#include <optional>
#include <thread>

#include "command.h"
#include "common_flags.h"
#include "core/error.h"
#include "core/units.h"
#include "engine/speculative.h"
#include "server/server.h"

namespace edgellm::cli {
namespace {

struct serve_options {
    session_flags session;  // session.n_ctx: the KV pool
    server::server_params server;
    std::optional<int> n_parallel;  // default 4
    int64_t n_ctx_seq = 0;
    draft_flags draft;  // speculative decoding
    std::string max_body = "32MiB";
    std::string max_decompressed = "32MiB";
    std::string max_header_bytes = "64KiB";
    std::string models_dir;  // the model store (--models-dir); "" = $EDGELLM_MODELS or the default
    std::string api_key_file;
};

void serve(serve_options& o) {
    if (o.session.model.empty()) throw usage_error("no model given: use -m MODEL.gguf");
    // The store's one owner (store::model_store) reads its folder from EDGELLM_MODELS: -m NAME,
    // /api/pull and /api/tags then all use the folder given here.
    if (!o.models_dir.empty()) setenv("EDGELLM_MODELS", o.models_dir.c_str(), 1);
    // The API key: --api-key, else --api-key-file, else $EDGELLM_API_KEY (the last two keep it out of ps).
    if (!o.api_key_file.empty()) {
        if (!o.server.api_key.empty()) throw usage_error("give --api-key or --api-key-file, not both");
        std::ifstream f(o.api_key_file);
        if (!f) throw usage_error(fmt::format("cannot read --api-key-file {}", o.api_key_file));
        std::getline(f, o.server.api_key);
        while (!o.server.api_key.empty() && std::isspace(static_cast<unsigned char>(o.server.api_key.back())))
            o.server.api_key.pop_back();
        if (o.server.api_key.empty()) throw usage_error(fmt::format("--api-key-file {} holds no key", o.api_key_file));
    } else if (o.server.api_key.empty()) {
        if (const char* k = std::getenv("EDGELLM_API_KEY"); k && *k) o.server.api_key = k;
    }
    o.server.max_body_bytes = parse_size(o.max_body, "--max-body");
    if (o.server.max_body_bytes == 0) throw usage_error("--max-body must be positive");
    o.server.max_decompressed_bytes = parse_size(o.max_decompressed, "--max-decompressed");
    o.server.max_header_bytes = parse_size(o.max_header_bytes, "--max-header-bytes");
    if (o.server.max_decompressed_bytes == 0) throw usage_error("--max-decompressed must be positive");
    if (o.server.max_header_bytes < 1024) throw usage_error("--max-header-bytes must be at least 1KiB");
    if (o.server.max_header_count < 8) throw usage_error("--max-header-count must be at least 8");
    for (const auto& [v, name] : {std::pair{o.server.read_timeout_s, "--read-timeout"},
                                  std::pair{o.server.idle_timeout_s, "--idle-timeout"},
                                  std::pair{o.server.shutdown_timeout_s, "--shutdown-timeout"}})
        if (!(v >= 0 && v <= 86400)) throw usage_error(fmt::format("{} must be 0..86400 seconds, got {}", name, v));
    if (o.server.read_timeout_s <= 0) throw usage_error("--read-timeout must be positive");
    if (o.server.max_connections == 0 || o.server.max_connections_per_client == 0)
        throw usage_error("--max-connections and --max-connections-per-client must be positive");
    const bool spec = o.draft.given();
    const int n_parallel = o.n_parallel.value_or(4);
    if (n_parallel <= 0) throw usage_error(fmt::format("--parallel must be at least 1, got {}", n_parallel));
    if (spec) engine::check_speculative_params(o.draft.spec);  // before the models load
    o.server.spec = o.draft.spec;
    if (o.server.port < 0 || o.server.port > 65535)
        throw usage_error(fmt::format("--port must be 0..65535, got {}", o.server.port));
    if (o.n_ctx_seq < 0) throw usage_error(fmt::format("--ctx-per-seq must be positive, got {}", o.n_ctx_seq));
    // SIGINT / SIGTERM end the server cleanly: a thread waits for them (handlers run nothing).
    // Blocked before any thread exists, so that every thread (kernel pool, HTTP) inherits it.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a client gone mid-stream is a failed write, not a dead server

    engine::engine_params ep = o.session.params();
    ep.spec = o.draft.ngram();  // n-gram drafts run inside the batched loop, with any --parallel
    // -c is the pool every sequence draws its KV blocks from; one sequence may use all of it
    // unless --ctx-per-seq caps it (and never more than the model was trained for).
    const int64_t pool_flag = ep.n_ctx;
    auto size_pool = [&](engine::engine_params& e, const model::model_hparams& hp) {
        const int64_t pool = pool_flag > 0 ? pool_flag : model::default_ctx(hp.n_ctx_train);
        e.n_kv_cells = pool;
        e.n_ctx = std::min({o.n_ctx_seq > 0 ? o.n_ctx_seq : pool, pool, hp.n_ctx_train});
        e.n_seq = n_parallel;
    };
    auto lm = engine::load_model_for(ep, size_pool);  // refuses before repacking when the pool does not fit
    std::unique_ptr<server::server> srv;
    std::string desc;
    if (ep.n_threads > 0) o.server.embed_threads = ep.n_threads;
    if (lm->get_model().is_encoder()) {
        // An embedding model served alone: the embeddings routes answer, generation routes refuse.
        if (spec) throw usage_error("--model-draft: an embedding model (encoder) does not generate text");
        desc = fmt::format("model: {} ({}, {} layers, encoder): embeddings only\n", o.session.model, lm->hparams().arch,
                           lm->hparams().n_layer);
        srv = std::make_unique<server::server>(lm, o.session.model, o.server);
    } else {
        auto eng = std::make_unique<engine::engine>(lm, ep);
        const engine::engine_params& used = eng->params();
        std::unique_ptr<engine::engine> draft;
        if (spec) draft = engine::open_draft(used, o.draft.model, used.n_ctx);
        desc = fmt::format(
            "model: {} ({}, {} layers), {} threads\n"
            "batching: {} parallel sequences, KV pool {} positions ({} blocks of {}, {} {}), up to {} positions per "
            "sequence, {} tokens per forward pass\n",
            o.session.model, eng->hparams().arch, eng->hparams().n_layer, used.n_threads, used.n_seq,
            eng->kv().n_blocks() * model::k_kv_block_size, eng->kv().n_blocks(), model::k_kv_block_size,
            format_bytes(eng->kv().size_bytes()), type_name(eng->kv().type()), used.n_ctx, used.n_batch);

        if (used.spec.enabled())
            desc += fmt::format("speculative decoding: n-gram drafts (prompt lookup, up to {}-grams), up to {} tokens "
                                "per step\n",
                                used.spec.ngram, used.spec.draft_max);
        if (draft)
            desc += fmt::format("speculative decoding: draft {} ({} positions per sequence, {}), up to {} tokens per "
                                "step for every sequence\n",
                                o.draft.model, draft->kv().n_ctx(), format_bytes(draft->kv().size_bytes()),
                                o.draft.spec.draft_max);
        srv = std::make_unique<server::server>(std::move(eng), o.session.model, o.server, std::move(draft));
    }
    const int port = srv->bind();
    std::fprintf(stderr, "%s", desc.c_str());
    std::fprintf(stderr, "listening on http://%s:%d (Ollama /api/*, OpenAI /v1/*, /health, /metrics)%s\n",
                 o.server.host.c_str(), port, o.server.api_key.empty() ? "" : ", API key required");
    if (o.server.webui) {
        // 0.0.0.0 / :: bind every address; a browser on this machine reaches them as localhost.
        const bool any = o.server.host == "0.0.0.0" || o.server.host == "::";
        const bool v6 = !any && o.server.host.find(':') != std::string::npos;
        std::fprintf(stderr, "chat page: http://%s%s%s:%d/ (--no-webui turns it off)\n", v6 ? "[" : "",
                     any ? "localhost" : o.server.host.c_str(), v6 ? "]" : "", port);
    }
    std::fflush(stderr);
    std::thread waiter([&srv, set] {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGINT || sig == SIGTERM) srv->stop();
    });
    srv->listen();
    // listen() also returns when the server failed; wake the waiter either way.
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    std::fprintf(stderr, "server stopped\n");
}

void setup(CLI::App& app) {
    auto opts = std::make_shared<serve_options>();
    CLI::App* cmd = app.add_subcommand("serve", "Serve a GGUF model over the Ollama and OpenAI APIs (continuous batching)");
    cmd->footer(
        "Routes: POST /api/generate /api/chat, GET /api/tags /api/ps /api/version, POST /api/show (Ollama);\n"
        "POST /v1/chat/completions /v1/completions, GET /v1/models (OpenAI); GET /health /metrics.\n"
        "Embeddings: POST /api/embed /api/embeddings (Ollama), /v1/embeddings (OpenAI); an encoder model\n"
        "(bert) is served for embeddings only.\n"
        "Requests share one batched forward pass per step; up to --parallel sequences run at once and\n"
        "draw KV blocks from a pool of -c positions; more requests wait (up to --max-queue, then 503).\n"
        "Examples:\n"
        "  edgellm serve -m qwen2.5-0.5b-instruct-q4_k_m.gguf --parallel 4 -c 8192\n"
        "  curl http://127.0.0.1:11434/api/generate -d '{\"model\":\"qwen2.5-0.5b-instruct-q4_k_m\",\"prompt\":\"Hi\"}'\n"
        "  OPENAI_BASE_URL=http://127.0.0.1:11434/v1 python3 my_openai_app.py\n");
    cmd->add_option("-m,--model", opts->session.model, "GGUF model file")->required();
    cmd->add_option("--host", opts->server.host, "address to listen on (default 127.0.0.1: this machine only)");
    cmd->add_option("--port", opts->server.port, "port (default 11434, Ollama's; 0 picks a free one)");
    cmd->add_option("-P,--parallel,--np", opts->n_parallel,
                    "sequences decoded together (default 4; also spelled -np)");
    opts->draft.add_to(cmd, "speculative decoding with this draft model (same vocabulary): it proposes tokens for "
                            "every decoding sequence, verified in the same batched pass");
    cmd->add_option("--ctx-per-seq", opts->n_ctx_seq, "positions one sequence may use (default: the whole pool)");
    cmd->add_option("--max-queue", opts->server.max_queue, "requests that may wait for a slot (default 64)");
    cmd->add_option("--max-body", opts->max_body,
                    "largest request body accepted, in bytes or with a unit (default 32MiB; larger ones get 413)");
    cmd->add_option("--max-decompressed", opts->max_decompressed,
                    "largest gzip/deflate request body once inflated (default 32MiB; larger ones get 413)");
    cmd->add_option("--max-header-count", opts->server.max_header_count,
                    "most header fields in a request (default 100; more get 431)");
    cmd->add_option("--max-header-bytes", opts->max_header_bytes,
                    "largest request line + headers (default 64KiB; larger get 431)");
    cmd->add_option("--read-timeout", opts->server.read_timeout_s,
                    "seconds from a request's first byte to its last, headers and body (default 30; then the "
                    "connection is closed); also the most a response write may wait for a client");
    cmd->add_option("--idle-timeout", opts->server.idle_timeout_s,
                    "seconds a kept-alive connection may wait for its next request (default 5)");
    cmd->add_option("--max-connections", opts->server.max_connections,
                    "open connections in all (default 1024; more get 503)");
    cmd->add_option("--max-connections-per-client", opts->server.max_connections_per_client,
                    "open connections from one client address (default 256; more get 503)");
    cmd->add_option("--shutdown-timeout", opts->server.shutdown_timeout_s,
                    "seconds SIGTERM/SIGINT waits for running requests: streams end with their final record a "
                    "second before, then every connection closes (default 5)");
    cmd->add_option("--api-key", opts->server.api_key,
                    "require 'Authorization: Bearer KEY' on every route but / and /health (visible in ps: prefer "
                    "--api-key-file or EDGELLM_API_KEY)");
    cmd->add_option("--api-key-file", opts->api_key_file, "read the API key from this file (its first line)");
    cmd->add_option("--allowed-origins", opts->server.allowed_origins,
                    "browser origins that may use the API besides loopback ones and this server's own, e.g. "
                    "http://192.168.1.20:3000 ('*': any; the default refuses other web pages, as Ollama)")
        ->delimiter(',');
    cmd->add_option("--models-dir", opts->models_dir,
                    "the model store for -m NAME, /api/pull, /api/tags (default $EDGELLM_MODELS, else "
                    "~/.cache/edgellm/models)");
    cmd->add_flag_callback("--no-webui", [opts] { opts->server.webui = false; },
                           "do not serve the web chat page on GET / (the APIs stay)");
    cmd->add_option("--alias", opts->server.model_name, "model name clients use (default: the file name)");
    cmd->add_option("--chat-template", opts->server.chat_template, "built-in template name or Jinja2 source");
    opts->session.add_to(cmd, "KV cache pool in positions, shared by all sequences (default: model's context, at most 4096)");
    cmd->callback([opts] { serve(*opts); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("serve", 37, setup);

}  // namespace edgellm::cli
