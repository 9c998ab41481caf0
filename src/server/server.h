// `edgellm serve`: an HTTP server answering the Ollama and OpenAI APIs over one loaded model.
// HTTP threads only parse, enqueue and stream; one engine thread runs the continuous-batching
// scheduler, so every request shares the batched forward passes and the paged KV cache.
// Only src/server/http_server.cpp knows the HTTP library (Boost.Beast); the routes see server/http.h.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/speculative.h"

namespace edgellm::server {

struct server_params {
    std::string host = "127.0.0.1";  // loopback unless told otherwise
    int port = 11434;                // Ollama's port, so its clients work unchanged
    std::string api_key;             // when set, every route but /, /health needs "Authorization: Bearer KEY"
    std::vector<std::string> allowed_origins;  // browser origins beyond loopback and our own ("*": any)
    std::string model_name;          // name clients use; default: the file name without .gguf
    size_t max_queue = 64;           // requests waiting for a slot; more get 503
    bool webui = true;               // GET / answers browsers with the chat page (--no-webui: off)
    size_t max_body_bytes = 32u << 20;  // request bodies above this get 413 (--max-body), chunked too
    // The HTTP layer's other limits (docs/server.md, "Limits and security"); each is a flag.
    size_t max_decompressed_bytes = 32u << 20;  // a gzip/deflate body inflated: 413 (--max-decompressed)
    size_t max_header_count = 100;              // header fields: 431 (--max-header-count)
    size_t max_header_bytes = 64u << 10;        // request line + headers: 431 (--max-header-bytes)
    double read_timeout_s = 30;                 // a request's first byte to its last: closed (--read-timeout)
    double idle_timeout_s = 5;                  // a kept-alive connection between requests (--idle-timeout)
    size_t max_connections = 1024;              // open connections: 503 beyond (--max-connections)
    size_t max_connections_per_client = 256;    // per client address: 503 beyond (--max-connections-per-client)
    double shutdown_timeout_s = 5;              // stop(): streams end with a final record, all closed within (--shutdown-timeout)
    int n_http_threads = 0;          // 0: enough for every slot and the queue
    std::string chat_template;       // built-in name or Jinja2 source overriding the model's
    engine::speculative_params spec;  // with a draft model: tokens drafted per round
    int embed_threads = 0;           // threads of embeddings requests; 0: the engine's (or all)
    int64_t embed_ctx = 0;           // longest embeddings input in tokens; 0: the model's context (max 8192)
};

class server {
public:
    // Takes a session whose KV slots (engine_params.n_seq) are the parallel sequences.
    // With `draft` (same vocabulary, a session with as many KV slots as `eng`), the draft model
    // proposes tokens for every decoding sequence inside the batched loop.
    server(std::unique_ptr<engine::engine> eng, std::string model_path, server_params p,
           std::unique_ptr<engine::engine> draft = nullptr);
    // An encoder (embedding) model served alone: the embeddings routes answer, generation
    // routes refuse with 400.
    server(std::shared_ptr<const engine::loaded_model> encoder, std::string model_path, server_params p);
    ~server();

    // Binds the address; throws usage_error when it cannot (port in use, bad host). Returns the
    // bound port (useful with port 0).
    int bind();
    // Serves until stop() has drained the connections (blocks); starts the engine thread.
    void listen();
    // Graceful: no new connections; streams end with their final record; returns at once, and
    // listen() returns within shutdown_timeout_s.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace edgellm::server
