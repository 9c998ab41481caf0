// HTTP/JSON client on cpp-httplib with connect timeouts and an overall per-call deadline.
#include "backends/http_client.h"

#include <httplib.h>

#include <chrono>

#include "core/error.h"
#include "core/timing.h"

namespace edgellm::backends {
namespace {

void split_url(const std::string& url, std::string& shp, std::string& prefix) {
    auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) throw usage_error("invalid URL '" + url + "' (expected http://host:port)");
    auto path_start = url.find('/', scheme_end + 3);
    shp = path_start == std::string::npos ? url : url.substr(0, path_start);
    prefix = path_start == std::string::npos ? "" : url.substr(path_start);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
}

std::string cause(httplib::Error e) {
    switch (e) {
        case httplib::Error::Connection: return "connection refused or host unreachable";
        case httplib::Error::ConnectionTimeout: return "connection timed out";
        case httplib::Error::Read: return "connection closed or timed out while reading the response";
        case httplib::Error::Write: return "connection closed while sending the request";
        case httplib::Error::Canceled: return "request took longer than the timeout";
        default: return httplib::to_string(e);
    }
}

template <typename Secs>
void set_timeouts(httplib::Client& c, Secs connect_s, Secs timeout_s) {
    auto us = [](double s) { return std::chrono::microseconds(static_cast<int64_t>(s * 1e6)); };
    c.set_connection_timeout(us(connect_s));
    c.set_read_timeout(us(timeout_s));
    c.set_write_timeout(us(timeout_s));
}

}  // namespace

http_client::http_client(std::string base_url, double connect_timeout_s, double timeout_s,
                         std::map<std::string, std::string> headers)
    : base_url_(std::move(base_url)),
      connect_timeout_s_(connect_timeout_s),
      timeout_s_(timeout_s),
      headers_(std::move(headers)) {
    split_url(base_url_, scheme_host_port_, prefix_);
}

namespace {
struct call_state {
    double deadline_ms;
    bool timed_out = false;
};
}  // namespace

http_response http_client::get(const std::string& path) const {
    httplib::Client c(scheme_host_port_);
    set_timeouts(c, connect_timeout_s_, timeout_s_);
    httplib::Headers h(headers_.begin(), headers_.end());
    call_state st{now_ms() + timeout_s_ * 1000};
    std::string body;
    auto res = c.Get((prefix_ + path).c_str(), h, [&](const char* data, size_t n) {
        body.append(data, n);
        if (now_ms() > st.deadline_ms) st.timed_out = true;
        return !st.timed_out;
    });
    if (!res) throw error("GET " + base_url_ + path + ": " + (st.timed_out ? "request took longer than the timeout" : cause(res.error())));
    return {res->status, std::move(body)};
}

http_response http_client::post_json(const std::string& path, const nlohmann::json& body) const {
    std::string all;
    auto r = post_stream_lines(path, body, [&](std::string_view line) {
        all.append(line);
        all.push_back('\n');
        return true;
    });
    if (r.status >= 200 && r.status < 300) r.body = std::move(all);
    return r;
}

http_response http_client::post_stream_lines(const std::string& path, const nlohmann::json& body,
                                             const std::function<bool(std::string_view)>& on_line) const {
    httplib::Client c(scheme_host_port_);
    set_timeouts(c, connect_timeout_s_, timeout_s_);
    httplib::Request req;
    req.method = "POST";
    req.path = prefix_ + path;
    for (const auto& [k, v] : headers_) req.headers.emplace(k, v);
    req.headers.emplace("Content-Type", "application/json");
    req.body = body.dump();
    call_state st{now_ms() + timeout_s_ * 1000};
    int status = 0;
    bool stopped = false;
    std::string pending, error_body;
    req.response_handler = [&](const httplib::Response& r) {
        status = r.status;
        return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        if (now_ms() > st.deadline_ms) {
            st.timed_out = true;
            return false;
        }
        if (status < 200 || status >= 300) {
            error_body.append(data, n);
            return true;
        }
        pending.append(data, n);
        size_t start = 0, nl;
        while ((nl = pending.find('\n', start)) != std::string::npos) {
            std::string_view line(pending.data() + start, nl - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            start = nl + 1;
            if (!on_line(line)) {
                stopped = true;
                return false;
            }
        }
        pending.erase(0, start);
        return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    bool ok = c.send(req, res, err);
    if (!ok && !stopped) {
        throw error("POST " + base_url_ + path + ": " +
                    (st.timed_out ? "request took longer than the timeout" : cause(err)));
    }
    if (!stopped && status >= 200 && status < 300 && !pending.empty()) on_line(pending);
    if (status == 0) status = res.status;
    return {status, std::move(error_body)};
}

nlohmann::json parse_server_json(std::string_view text, const std::string& what) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        std::string sample(text.substr(0, 120));
        throw error(what + ": malformed JSON from server: '" + sample + (text.size() > 120 ? "...'" : "'"));
    }
    return j;
}

std::string describe_http_error(const http_response& r) {
    std::string msg = "HTTP " + std::to_string(r.status);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error")) {
        const auto& e = j["error"];
        if (e.is_string()) return msg + ": " + e.get<std::string>();
        if (e.is_object() && e.contains("message") && e["message"].is_string())
            return msg + ": " + e["message"].get<std::string>();
    }
    if (!r.body.empty()) msg += ": " + r.body.substr(0, 200);
    return msg;
}

}  // namespace edgellm::backends
