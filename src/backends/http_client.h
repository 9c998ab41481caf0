// A small HTTP/JSON client for the HTTP backends: every call has a connect timeout and an overall
// deadline, and failures become edgellm::error messages naming the URL and the cause.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace edgellm::backends {

struct http_response {
    int status = 0;
    std::string body;
};

class http_client {
public:
    // base_url: "http://host:port" with an optional path prefix ("http://h:8000/v1").
    http_client(std::string base_url, double connect_timeout_s, double timeout_s,
                std::map<std::string, std::string> headers = {});

    http_response get(const std::string& path) const;
    http_response post_json(const std::string& path, const nlohmann::json& body) const;
    // POSTs and hands every complete line of the response body to on_line as it arrives (for
    // NDJSON and server-sent events). on_line returns false to stop reading. For a non-2xx status
    // the lines are not delivered; the body is returned in the response instead.
    http_response post_stream_lines(const std::string& path, const nlohmann::json& body,
                                    const std::function<bool(std::string_view line)>& on_line) const;

    const std::string& base_url() const { return base_url_; }

private:
    std::string base_url_;
    std::string scheme_host_port_;
    std::string prefix_;
    double connect_timeout_s_;
    double timeout_s_;
    std::map<std::string, std::string> headers_;
};

// Parses JSON from a server, throwing edgellm::error("<what>: malformed JSON ...") on failure.
nlohmann::json parse_server_json(std::string_view text, const std::string& what);
// "HTTP 404: model 'x' not found" from an error response (uses the JSON "error" field if any).
std::string describe_http_error(const http_response& r);

}  // namespace edgellm::backends
