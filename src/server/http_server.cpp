// The server's HTTP layer over Boost.Beast and Asio (the only file that knows them): one I/O
// thread accepts connections and reads requests asynchronously under limits (header bytes and
// count, body bytes while reading, chunked included, the inflated size of gzip/deflate bodies,
// a request-read deadline, an idle keep-alive timeout, connections in all and per address), so a
// slow or idle connection costs no thread. A request read in full runs on a worker thread; its
// response (a body, or a chunked stream) is written back through the I/O thread with a write
// deadline. Pipelined requests are answered in order. stop() drains: no new connections, idle
// and half-read ones closed at once, streams told to end (data_sink::stopping) and the rest
// closed at the shutdown timeout.
#include "server/http.h"

#include <fmt/format.h>
#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <zlib.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/log.h"

namespace edgellm::server::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

bool iequals(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string url_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::chrono::milliseconds ms(double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); }

// Inflates a gzip or zlib (deflate) body, refusing to grow past `limit` bytes.
enum class inflate_result { ok, too_large, corrupt };
inflate_result inflate_body(std::string& body, size_t limit) {
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 32) != Z_OK) return inflate_result::corrupt;  // 15+32: gzip or zlib header
    std::string out;
    zs.next_in = reinterpret_cast<Bytef*>(body.data());
    zs.avail_in = static_cast<uInt>(body.size());
    char buf[65536];
    int rc = Z_OK;
    inflate_result r = inflate_result::ok;
    while (rc != Z_STREAM_END) {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof(buf);
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            r = inflate_result::corrupt;
            break;
        }
        const size_t n = sizeof(buf) - zs.avail_out;
        if (out.size() + n > limit) {
            r = inflate_result::too_large;
            break;
        }
        out.append(buf, n);
        if (rc == Z_STREAM_END && zs.avail_in > 0) {  // another gzip member follows (RFC 1952 allows several)
            if (inflateReset(&zs) != Z_OK) {
                r = inflate_result::corrupt;
                break;
            }
            rc = Z_OK;
            continue;
        }
        if (rc == Z_OK && n == 0 && zs.avail_in == 0) {  // truncated stream
            r = inflate_result::corrupt;
            break;
        }
    }
    inflateEnd(&zs);
    if (r == inflate_result::ok) body.swap(out);
    return r;
}

std::string reason(int status) {
    const auto r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
    return r.empty() ? std::string("Unknown") : std::string(r);
}

}  // namespace

std::string request::get_header_value(const std::string& name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

bool request::has_header(const std::string& name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return true;
    return false;
}

std::string request::get_param_value(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
}

// ---- the server ----

struct session;

struct server::impl {
    limits lim;
    asio::io_context io{1};
    tcp::acceptor acceptor{io};
    std::map<std::pair<std::string, std::string>, handler> routes;
    std::function<bool(const request&, response&)> pre_routing;
    std::function<void(const request&, response&, const layer_error&)> error_renderer;

    // I/O thread only.
    std::unordered_map<session*, std::weak_ptr<session>> sessions;
    std::unordered_map<std::string, size_t> per_client;
    asio::steady_timer drain_timer{io};

    // Drain state, read by any thread.
    std::atomic<bool> draining{false};
    std::atomic<int64_t> stop_streams_at_ns{std::numeric_limits<int64_t>::max()};
    std::atomic<size_t> n_sessions{0};

    // Workers.
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> tasks;
    bool workers_stop = false;
    std::vector<std::thread> workers;

    std::mutex done_mu;
    std::condition_variable done_cv;
    bool stop_requested = false;
    bool listening = false;  // listen() runs (done_mu)

    explicit impl(limits l) : lim(l) {}

    void submit(std::function<void()> f) {
        {
            std::lock_guard lock(mu);
            tasks.push_back(std::move(f));
        }
        cv.notify_one();
    }
    void worker_loop() {
        for (;;) {
            std::function<void()> f;
            {
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return workers_stop || !tasks.empty(); });
                if (tasks.empty()) return;
                f = std::move(tasks.front());
                tasks.pop_front();
            }
            f();
        }
    }
    bool streams_must_stop() const {
        return clock_type::now().time_since_epoch().count() >= stop_streams_at_ns.load();
    }
    void accept();
    void begin_drain();
    void session_ended(session* s, const std::string& addr) {
        sessions.erase(s);
        if (auto it = per_client.find(addr); it != per_client.end() && --it->second == 0) per_client.erase(it);
        if (--n_sessions == 0 && draining) {
            std::lock_guard lock(done_mu);
            done_cv.notify_all();
        }
    }
    // The worker side of one request: routing, the handler, the response.
    void handle(request& req, response& res);
};

// One connection. Every member is used on the I/O thread, except while a worker owns the
// response (state::handling), when the worker writes through send() and peeks at the socket.
struct session : std::enable_shared_from_this<session> {
    enum class state { idle, reading, handling, closed };
    server::impl& srv;
    tcp::socket sock;
    asio::steady_timer timer;
    uint64_t timer_gen = 0;
    beast::flat_buffer buf;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser;
    std::string addr;
    state st = state::idle;
    bool over_limit = false;  // answered 503 once its request line is read
    std::atomic<bool> sock_closed{false};
    clock_type::time_point linger_until;

    session(server::impl& s, tcp::socket so, std::string a)
        : srv(s), sock(std::move(so)), timer(s.io), addr(std::move(a)) {}
    // The last reference may go on a worker: the bookkeeping is the I/O thread's.
    ~session() { asio::post(srv.io, [s = &srv, p = this, a = std::move(addr)] { s->session_ended(p, a); }); }

    void arm(std::chrono::milliseconds d) {
        const uint64_t gen = ++timer_gen;
        timer.expires_after(d);
        timer.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
            if (!ec && gen == self->timer_gen) self->close();
        });
    }
    void disarm() {
        ++timer_gen;
        timer.cancel();
    }
    void close() {
        if (st == state::closed && sock_closed) return;
        if (st != state::handling) st = state::closed;
        beast::error_code ec;
        sock.shutdown(tcp::socket::shutdown_both, ec);
        sock.close(ec);
        sock_closed = true;
        disarm();
    }

    // Waits for the next request (idle keep-alive timeout), then reads it (request-read deadline).
    void wait_request() {
        if (srv.draining) return close();
        st = state::idle;
        if (buf.size() > 0) return read_header();  // a pipelined request is already here
        arm(ms(srv.lim.idle_timeout_s));
        sock.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
            if (ec || self->st == state::closed) return self->close();
            self->read_header();
        });
    }

    void read_header() {
        st = state::reading;
        arm(ms(over_limit ? std::min(2.0, srv.lim.read_timeout_s) : srv.lim.read_timeout_s));
        parser.emplace();
        parser->header_limit(static_cast<std::uint32_t>(std::min<size_t>(srv.lim.max_header_bytes, UINT32_MAX)));
        parser->body_limit(srv.lim.max_body);
        bhttp::async_read_header(sock, buf, *parser, [self = shared_from_this()](beast::error_code ec, size_t) {
            self->on_header(ec);
        });
    }

    // Answers an error of the layer's own and closes the connection (its framing is not trusted).
    void fail(int status, std::string msg) {
        request req;
        if (parser && !parser->get().target().empty()) {  // the request line was read (the fields maybe not)
            req.method = std::string(parser->get().method_string());
            const std::string target(parser->get().target());
            req.path = target.substr(0, target.find('?'));
        }
        req.remote_addr = addr;
        response res;
        res.status = status;
        srv.error_renderer(req, res, {status, std::move(msg)});
        auto data = std::make_shared<std::string>(fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: "
                                                              "{}\r\nConnection: close\r\n\r\n",
                                                              status, reason(status), res.content_type,
                                                              res.body.size()));
        *data += res.body;
        st = state::reading;  // still ours; closed after the write
        arm(std::chrono::seconds(5));
        asio::async_write(sock, asio::buffer(*data), [self = shared_from_this(), data](beast::error_code, size_t) {
            // Drain what the client still sends briefly, so the close is not a reset that could
            // destroy the answer before it is read.
            beast::error_code ec;
            self->sock.shutdown(tcp::socket::shutdown_send, ec);
            self->linger_until = clock_type::now() + std::chrono::seconds(3);
            self->linger_then_close();
        });
    }
    // Reads and drops what the client still sends for a while (at most 3 s, 0.5 s of silence).
    void linger_then_close() {
        auto junk = std::make_shared<std::array<char, 65536>>();
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(linger_until - clock_type::now());
        if (left.count() <= 0) return close();
        arm(std::min(left, std::chrono::milliseconds(500)));
        sock.async_read_some(asio::buffer(*junk), [self = shared_from_this(), junk](beast::error_code ec, size_t) {
            if (ec || self->st == state::closed) return self->close();
            self->linger_then_close();
        });
    }

    void on_header(beast::error_code ec) {
        if (st == state::closed) return;
        if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::operation_aborted ||
            ec == asio::error::connection_reset)
            return close();
        if (ec == bhttp::error::header_limit)
            return fail(431, fmt::format("the request headers are larger than this server's limit of {} bytes "
                                         "(--max-header-bytes)",
                                         srv.lim.max_header_bytes));
        if (ec == bhttp::error::body_limit) return body_too_large();
        if (ec) return fail(400, fmt::format("malformed HTTP request: {}", ec.message()));
        auto& msg = parser->get();
        if (over_limit)
            return fail(503, fmt::format("too many connections (this server allows {} in all and {} per client "
                                         "address: --max-connections, --max-connections-per-client)",
                                         srv.lim.max_connections, srv.lim.max_connections_per_client));
        size_t n_fields = 0;
        for (auto it = msg.begin(); it != msg.end(); ++it) ++n_fields;
        if (n_fields > srv.lim.max_header_count)
            return fail(431, fmt::format("the request has {} header fields; this server's limit is {} "
                                         "(--max-header-count)",
                                         n_fields, srv.lim.max_header_count));
        if (msg.version() >= 11 && msg.count(bhttp::field::host) == 0)
            return fail(400, "an HTTP/1.1 request must have a Host header");
        if (msg.count(bhttp::field::host) > 1) return fail(400, "the request has more than one Host header");
        if (msg.count(bhttp::field::transfer_encoding) && !parser->chunked())
            return fail(400, "unsupported Transfer-Encoding (only chunked is accepted)");
        const std::string enc(msg[bhttp::field::content_encoding]);
        if (!enc.empty() && !iequals(enc, "identity") && !iequals(enc, "gzip") && !iequals(enc, "deflate") &&
            !iequals(enc, "x-gzip"))
            return fail(415, fmt::format("unsupported Content-Encoding '{}' (gzip, deflate or identity)", enc));
        if (parser->is_done()) return dispatch();
        if (bhttp::token_list(msg[bhttp::field::expect]).exists("100-continue") && msg.version() >= 11) {
            static const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
            asio::async_write(sock, asio::buffer(cont), [self = shared_from_this()](beast::error_code e, size_t) {
                if (e) return self->close();
                self->read_body();
            });
            return;
        }
        read_body();
    }
    void read_body() {
        bhttp::async_read(sock, buf, *parser, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (self->st == state::closed) return;
            if (ec == bhttp::error::body_limit) return self->body_too_large();
            if (ec.category() == bhttp::make_error_code(bhttp::error::bad_chunk).category() &&
                ec != bhttp::error::partial_message && ec != bhttp::error::end_of_stream)
                return self->fail(400, fmt::format("malformed request body: {}", ec.message()));
            if (ec) return self->close();  // the client left
            self->dispatch();
        });
    }
    void body_too_large() {
        fail(413, fmt::format("the request body is larger than this server's limit of {} bytes (raise it with "
                              "--max-body)",
                              srv.lim.max_body));
    }

    // A complete request: off to a worker.
    void dispatch() {
        disarm();
        auto& msg = parser->get();
        auto req = std::make_shared<request>();
        req->method = std::string(msg.method_string());
        const std::string target(msg.target());
        const size_t q = target.find('?');
        req->path = target.substr(0, q);
        if (q != std::string::npos) {
            req->query = target.substr(q + 1);
            std::string_view rest = req->query;
            while (!rest.empty()) {
                const size_t amp = rest.find('&');
                const std::string_view kv = rest.substr(0, amp);
                const size_t eq = kv.find('=');
                req->params.emplace(url_decode(kv.substr(0, eq)),
                                    eq == std::string_view::npos ? std::string() : url_decode(kv.substr(eq + 1)));
                rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
            }
        }
        for (const auto& f : msg) req->headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        req->remote_addr = addr;
        const bool keep_alive = msg.keep_alive();
        const bool http10 = msg.version() < 11;
        req->body = std::move(msg.body());
        const std::string enc(msg[bhttp::field::content_encoding]);
        parser.reset();
        if (buf.capacity() > (256u << 10)) buf.shrink_to_fit();
        st = state::handling;
        srv.submit([self = shared_from_this(), req, keep_alive, http10, enc] {
            self->run(*req, keep_alive, http10, enc);
        });
    }

    // ---- worker side ----

    // Writes through the I/O thread and waits; false when the connection is gone or the client
    // does not take the bytes within the read timeout.
    bool send(std::shared_ptr<std::string> data) {
        if (sock_closed) return false;
        auto done = std::make_shared<std::promise<bool>>();
        auto fut = done->get_future();
        asio::post(srv.io, [self = shared_from_this(), data, done] {
            if (self->sock_closed) return done->set_value(false);
            self->arm(ms(std::max(self->srv.lim.read_timeout_s, 1.0)));
            asio::async_write(self->sock, asio::buffer(*data), [self, data, done](beast::error_code ec, size_t) {
                self->disarm();
                done->set_value(!ec);
            });
        });
        return fut.get();
    }
    // Whether the client still has its side open (peeked on the I/O thread, which owns the socket).
    bool peer_open() {
        if (sock_closed) return false;
        auto done = std::make_shared<std::promise<bool>>();
        auto fut = done->get_future();
        asio::post(srv.io, [self = shared_from_this(), done] {
            if (self->sock_closed) return done->set_value(false);
            char c;
            const ssize_t n = ::recv(self->sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n > 0) return done->set_value(true);  // a pipelined request
            if (n == 0) return done->set_value(false);  // the client closed its side
            done->set_value(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
        });
        return fut.get();
    }

    struct sink final : data_sink {
        session& s;
        bool chunked;
        bool ok = true;
        bool finished = false;
        sink(session& se, bool c) : s(se), chunked(c) {}
        bool write(const char* data, size_t n) override {
            if (!ok) return false;
            if (n == 0) return true;
            auto out = std::make_shared<std::string>();
            if (chunked) {
                *out = fmt::format("{:x}\r\n", n);
                out->append(data, n);
                *out += "\r\n";
            } else {
                out->assign(data, n);
            }
            ok = s.send(std::move(out));
            return ok;
        }
        void done() override { finished = true; }
        bool is_writable() const override { return ok && s.peer_open(); }
        bool stopping() const override { return s.srv.streams_must_stop(); }
    };

    void run(request& req, bool keep_alive, bool http10, const std::string& enc) {
        response res;
        size_t body_size = req.body.size();
        // A gzip/deflate body is inflated here (off the I/O thread), never past --max-decompressed.
        auto r = inflate_result::ok;
        if (!enc.empty() && !iequals(enc, "identity")) {
            r = inflate_body(req.body, srv.lim.max_decompressed);
            body_size = std::max(body_size, r == inflate_result::ok ? req.body.size() : srv.lim.max_decompressed);
        }
        if (r != inflate_result::ok) {
            const int status = r == inflate_result::too_large ? 413 : 400;
            res.status = status;
            srv.error_renderer(req, res,
                               {status, r == inflate_result::too_large
                                            ? fmt::format("the request body inflates to more than this server's limit "
                                                          "of {} bytes (--max-decompressed)",
                                                          srv.lim.max_decompressed)
                                            : fmt::format("the {} request body is corrupt", enc)});
            keep_alive = false;
        } else if (srv.draining) {
            res.status = 503;
            srv.error_renderer(req, res, {503, "the server is shutting down"});
        } else {
            srv.handle(req, res);
        }
        req.body.clear();
        req.body.shrink_to_fit();
        keep_alive = keep_alive && !srv.draining;
        std::string head = fmt::format("HTTP/1.1 {} {}\r\n", res.status, reason(res.status));
        for (const auto& [k, v] : res.headers) head += fmt::format("{}: {}\r\n", k, v);
        if (!res.content_type.empty()) head += fmt::format("Content-Type: {}\r\n", res.content_type);
        const bool head_only = req.method == "HEAD";
        bool ok = true;
        if (!res.provider) {
            head += fmt::format("Content-Length: {}\r\n", res.body.size());
            if (!keep_alive) head += "Connection: close\r\n";
            else if (http10) head += "Connection: keep-alive\r\n";  // HTTP/1.0 closes unless told
            head += "\r\n";
            auto data = std::make_shared<std::string>(std::move(head));
            if (!head_only) *data += res.body;
            res.body.clear();
            ok = send(std::move(data));
        } else {
            // HTTP/1.0 has no chunked encoding: the body ends with the connection.
            if (http10) keep_alive = false;
            if (!http10) head += "Transfer-Encoding: chunked\r\n";
            if (!keep_alive) head += "Connection: close\r\n";
            head += "\r\n";
            ok = send(std::make_shared<std::string>(std::move(head)));
            sink sk(*this, !http10);
            while (ok && !sk.finished) {
                bool more = false;
                try {
                    more = res.provider(sk);
                } catch (const std::exception& e) {
                    log::warn("stream provider failed: {}", e.what());
                }
                if (!more) ok = false;
            }
            if (ok && !http10) ok = send(std::make_shared<std::string>("0\r\n\r\n"));
            if (res.on_end) res.on_end(ok);
        }
        res = response();
        // Large bodies leave freed memory in the allocator's arenas: give it back.
        if (body_size > (1u << 20)) malloc_trim(0);
        asio::post(srv.io, [self = shared_from_this(), ok, keep_alive] {
            self->st = state::idle;
            if (!ok || !keep_alive || self->sock_closed) return self->close();
            self->wait_request();
        });
    }
};

void server::impl::accept() {
    acceptor.async_accept([self = this](beast::error_code ec, tcp::socket sock) {
        if (ec) {
            if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
            // Out of file descriptors and the like: wait a little rather than spin.
            log::warn("accept failed: {}", ec.message());
            auto t = std::make_shared<asio::steady_timer>(self->io, std::chrono::milliseconds(100));
            t->async_wait([self, t](beast::error_code) {
                if (self->acceptor.is_open()) self->accept();
            });
            return;
        }
        beast::error_code e2;
        const auto ep = sock.remote_endpoint(e2);
        std::string addr = e2 ? std::string("?") : ep.address().to_string();
        sock.set_option(tcp::no_delay(true), e2);  // no Nagle stall on kept-alive connections
        const size_t total = self->n_sessions.load();
        size_t& mine = self->per_client[addr];
        const bool over = total >= self->lim.max_connections || mine >= self->lim.max_connections_per_client;
        if (over && total >= self->lim.max_connections + 64) {
            // Far past the limit: not even an answer.
            if (mine == 0) self->per_client.erase(addr);
            sock.close(e2);
        } else {
            ++mine;
            ++self->n_sessions;
            auto s = std::make_shared<session>(*self, std::move(sock), addr);
            s->over_limit = over;
            self->sessions.emplace(s.get(), s);
            s->wait_request();
        }
        self->accept();
    });
}

void server::impl::begin_drain() {
    draining = true;
    const auto now = clock_type::now();
    // Streams end with their final record a second before the sockets close (half the time when shorter).
    const double stream_s = std::max(lim.shutdown_timeout_s - 1.0, lim.shutdown_timeout_s / 2);
    stop_streams_at_ns = (now + ms(stream_s)).time_since_epoch().count();
    beast::error_code ec;
    acceptor.close(ec);
    for (auto& [p, w] : sessions)
        if (auto s = w.lock(); s && s->st != session::state::handling) s->close();
    drain_timer.expires_after(ms(lim.shutdown_timeout_s));
    drain_timer.async_wait([self = this](beast::error_code e) {
        if (e) return;
        for (auto& [p, w] : self->sessions)
            if (auto s = w.lock()) s->close();
    });
    std::lock_guard lock(done_mu);
    done_cv.notify_all();
}

void server::impl::handle(request& req, response& res) {
    try {
        if (pre_routing && pre_routing(req, res)) return;
        const std::string method = req.method == "HEAD" ? "GET" : req.method;
        auto it = routes.find({method, req.path});
        if (it == routes.end()) {
            res.status = 404;
            error_renderer(req, res, {404, "no such route"});
            return;
        }
        it->second(req, res);
    } catch (const std::exception& e) {
        res = response();
        res.status = 500;
        error_renderer(req, res, {500, e.what()});
    }
}

server::server(limits l) : impl_(std::make_shared<impl>(l)) {
    // Request bodies are the only large short-lived buffers of a server process. glibc serves
    // them from per-thread arenas and, past its dynamic mmap threshold, keeps them there: each
    // worker's arena held its last large body (+15-33 MB per request, never returned, even by
    // malloc_trim). A fixed threshold maps buffers of 4 MiB and more on their own and unmaps them
    // when freed. Process-wide, but the engine allocates its big buffers once.
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

server::~server() {
    stop();
}

void server::route(const std::string& method, const std::string& path, handler h) {
    impl_->routes[{method, path}] = std::move(h);
}

void server::set_pre_routing(std::function<bool(const request&, response&)> f) { impl_->pre_routing = std::move(f); }

void server::set_error_renderer(std::function<void(const request&, response&, const layer_error&)> f) {
    impl_->error_renderer = std::move(f);
}

const limits& server::get_limits() const { return impl_->lim; }

int server::bind(const std::string& host, int port) {
    beast::error_code ec;
    tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
    if (ec) return -1;
    for (const auto& r : results) {
        tcp::acceptor& a = impl_->acceptor;
        a.open(r.endpoint().protocol(), ec);
        if (ec) continue;
        // SO_REUSEADDR only: SO_REUSEPORT would let a second server bind the same port silently.
        a.set_option(asio::socket_base::reuse_address(true), ec);
        a.bind(r.endpoint(), ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (!ec) return a.local_endpoint().port();
        a.close();
    }
    return -1;
}

void server::listen() {
    impl& m = *impl_;
    if (!m.acceptor.is_open()) return;
    {
        std::lock_guard lock(m.done_mu);
        if (m.stop_requested) return;
        m.listening = true;
    }
    const int n = std::max(1, m.lim.n_workers);
    for (int i = 0; i < n; ++i) m.workers.emplace_back([&m] { m.worker_loop(); });
    auto guard = asio::make_work_guard(m.io);
    m.accept();
    std::thread io_thread([&m] {
        for (;;) {
            try {
                m.io.run();
                return;
            } catch (const std::exception& e) {
                log::warn("HTTP I/O thread: {}", e.what());
            }
        }
    });
    {
        // Until stop() and every connection is gone (the drain timer closes the last ones).
        std::unique_lock lock(m.done_mu);
        m.done_cv.wait(lock, [&] { return m.stop_requested && m.draining && m.n_sessions == 0; });
    }
    {
        std::lock_guard lock(m.mu);
        m.workers_stop = true;
    }
    m.cv.notify_all();
    for (auto& t : m.workers) t.join();
    m.workers.clear();
    // Every connection is gone: let the last handlers (the aborted accept, the drain timer) run out.
    asio::post(m.io, [&m] { m.drain_timer.cancel(); });
    guard.reset();
    io_thread.join();
    std::lock_guard lock(m.done_mu);
    m.listening = false;
}

void server::stop() {
    impl& m = *impl_;
    {
        std::lock_guard lock(m.done_mu);
        if (m.stop_requested) return;
        m.stop_requested = true;
    }
    if (m.listening) asio::post(m.io, [self = impl_.get()] { self->begin_drain(); });
    // listen() may not be running (stop before listen): nothing to drain then.
    m.done_cv.notify_all();
}

}  // namespace edgellm::server::http
