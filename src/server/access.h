// Who may talk to the server: the Host and Origin rules that keep web pages the user visits
// from driving it (CSRF, DNS rebinding), as Ollama's OLLAMA_ORIGINS / allowed-host checks, and
// the API-key check. Pure functions of header values, unit-tested without a socket.
#pragma once
#include <string>
#include <vector>

namespace edgellm::server {

// "localhost", "x.localhost", "127.0.0.5", "::1" (brackets and a :port are ignored).
bool is_loopback_name(const std::string& host_or_host_port);

// A server bound to a loopback address answers only requests whose Host header names a loopback
// host (DNS rebinding makes evil.example resolve to 127.0.0.1; its Host still says evil.example).
// A server bound elsewhere was opened to the network on purpose and takes any Host.
bool host_allowed(const std::string& host_header, const std::string& bound_host);

// A browser's Origin ("http://localhost:3000"): loopback origins, the server's own address, and
// the ones given with --allowed-origins (exact "scheme://host[:port]", or "*" for any) pass.
bool origin_allowed(const std::string& origin, const std::string& bound_host, const std::vector<std::string>& extra);

// "Authorization: Bearer KEY" with the scheme case-insensitive (RFC 7235); the key compared in
// constant time.
bool bearer_matches(const std::string& authorization, const std::string& key);

}  // namespace edgellm::server
