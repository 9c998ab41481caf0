#include "server/access.h"

#include <algorithm>
#include <cctype>

namespace edgellm::server {
namespace {

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// "host:port", "[v6]:port", "host" -> host (lowercase, no brackets).
std::string host_part(const std::string& hp) {
    std::string s = lower(hp);
    if (!s.empty() && s[0] == '[') {
        const size_t close = s.find(']');
        return close == std::string::npos ? s.substr(1) : s.substr(1, close - 1);
    }
    if (std::count(s.begin(), s.end(), ':') > 1) return s;  // a bare IPv6 address
    return s.substr(0, s.find(':'));
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool is_loopback_name(const std::string& host_or_host_port) {
    const std::string h = host_part(host_or_host_port);
    if (h == "localhost" || ends_with(h, ".localhost") || h == "::1" || h == "0:0:0:0:0:0:0:1") return true;
    if (h.rfind("127.", 0) == 0)
        return std::all_of(h.begin(), h.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
    return false;
}

bool host_allowed(const std::string& host_header, const std::string& bound_host) {
    if (!is_loopback_name(bound_host)) return true;
    if (host_header.empty()) return true;  // HTTP/1.0 clients; browsers always send Host
    return is_loopback_name(host_header);
}

bool origin_allowed(const std::string& origin, const std::string& bound_host, const std::vector<std::string>& extra) {
    const std::string o = lower(origin);
    for (const auto& e : extra)
        if (e == "*" || lower(e) == o) return true;
    const size_t scheme_end = o.find("://");
    if (scheme_end == std::string::npos) return false;  // "null" (sandboxed frames, file pages) and garbage
    const std::string scheme = o.substr(0, scheme_end);
    if (scheme != "http" && scheme != "https") return false;
    const std::string hp = o.substr(scheme_end + 3);
    if (hp.find('/') != std::string::npos) return false;
    if (is_loopback_name(hp)) return true;
    const std::string bound = host_part(bound_host);
    return bound != "0.0.0.0" && bound != "::" && !bound.empty() && host_part(hp) == bound;
}

bool bearer_matches(const std::string& authorization, const std::string& key) {
    const size_t sp = authorization.find(' ');
    if (sp == std::string::npos || lower(authorization.substr(0, sp)) != "bearer") return false;
    size_t start = sp;
    while (start < authorization.size() && authorization[start] == ' ') ++start;
    const std::string given = authorization.substr(start);
    unsigned diff = given.size() == key.size() ? 0u : 1u;
    for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned>(given[i] ^ key[i % std::max<size_t>(key.size(), 1)]);
    return diff == 0 && !key.empty();
}

}  // namespace edgellm::server
