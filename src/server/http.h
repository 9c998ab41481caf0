// The server's own HTTP types: what a route handler sees (a fully read request) and fills in (a
// response: a body, or a streaming provider). Only http_server.cpp knows the HTTP library
// (Boost.Beast over Asio); the route files use these types alone.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace edgellm::server::http {

// The limits of one server; each is a flag of `edgellm serve` (docs/server.md, "Limits and security").
struct limits {
    size_t max_body = 32u << 20;          // request body bytes on the wire (Content-Length, chunked): 413
    size_t max_decompressed = 32u << 20;  // a gzip/deflate body's bytes once inflated: 413
    size_t max_header_count = 100;        // header fields: 431
    size_t max_header_bytes = 64u << 10;  // request line and headers: 431
    double read_timeout_s = 30;           // first byte of a request -> its last byte (headers and body): 408
    double idle_timeout_s = 5;            // a kept-alive connection waiting for its next request is closed
    size_t max_connections = 1024;        // open connections in all: more get 503 and are closed
    size_t max_connections_per_client = 256;  // open connections from one address: more get 503
    double shutdown_timeout_s = 5;        // stop(): streams end with their final record and sockets close within this
    int n_workers = 16;                   // threads running handlers (idle and reading connections cost none)
};

struct request {
    std::string method;  // "GET", "POST", ...
    std::string path;    // the target without its query
    std::string query;   // after '?', undecoded
    std::multimap<std::string, std::string> params;  // the query's key=value pairs, %-decoded
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;  // read in full (and inflated) before the handler runs
    std::string remote_addr;

    // The first header of that name (case-insensitive), or "".
    std::string get_header_value(const std::string& name) const;
    bool has_header(const std::string& name) const;
    std::string get_param_value(const std::string& name) const;
};

// Where a streaming response writes; one per response, used by the handler's thread only.
class data_sink {
public:
    virtual ~data_sink() = default;
    // Sends one piece (a chunk); false when the client is gone or too slow (the stream ends).
    virtual bool write(const char* data, size_t n) = 0;
    bool write(const std::string& s) { return write(s.data(), s.size()); }
    // The response is complete (the provider is not called again).
    virtual void done() = 0;
    // False once the client has closed its side (checked without writing).
    virtual bool is_writable() const = 0;
    // True once the server is shutting down and its drain time is nearly spent: a stream ends its
    // work now and sends its final record.
    virtual bool stopping() const = 0;
};

struct response {
    int status = 200;
    std::string body;
    std::string content_type;
    std::vector<std::pair<std::string, std::string>> headers;
    // A streaming response (chunked): called until it calls sink.done() or returns false (then the
    // connection is closed); `on_end(true)` after a complete stream, `on_end(false)` otherwise.
    std::function<bool(data_sink& sink)> provider;
    std::function<void(bool complete)> on_end;

    void set_content(std::string b, std::string type) {
        body = std::move(b);
        content_type = std::move(type);
    }
    void set_content(const char* data, size_t n, std::string type) { set_content(std::string(data, n), std::move(type)); }
    void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
    void set_chunked_content_provider(std::string type, std::function<bool(data_sink&)> p,
                                      std::function<void(bool)> end = {}) {
        content_type = std::move(type);
        provider = std::move(p);
        on_end = std::move(end);
    }
};

using handler = std::function<void(const request&, response&)>;

// An error the HTTP layer answers itself (a malformed request, a limit, an unknown route, the
// server draining): the owner renders the body in the shape of the route's API.
struct layer_error {
    int status;
    std::string message;
};

class server {
public:
    explicit server(limits l);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Exact-path routes; HEAD is answered by the GET route without a body.
    void route(const std::string& method, const std::string& path, handler h);
    // Runs before routing: returns true when it answered the request itself.
    void set_pre_routing(std::function<bool(const request&, response&)> f);
    // Renders the layer's own errors (req may hold only the method and path).
    void set_error_renderer(std::function<void(const request&, response&, const layer_error&)> f);
    const limits& get_limits() const;

    // Binds host:port (port 0: a free one); returns the port, or -1 when it cannot bind.
    int bind(const std::string& host, int port);
    // Serves until stop() has drained every connection (blocks).
    void listen();
    // Graceful: stops accepting, closes idle and half-read connections, lets responses finish
    // (streams see data_sink::stopping() shortly before the drain time ends), closes what is
    // left at shutdown_timeout. Thread-safe; returns at once.
    void stop();

    struct impl;  // http_server.cpp

private:
    std::shared_ptr<impl> impl_;
};

}  // namespace edgellm::server::http
