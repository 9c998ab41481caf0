// The model store over Ollama's API: POST /api/pull (streamed progress records as Ollama sends
// them) and DELETE /api/delete; /api/tags lists the store beside the served model (api_ollama.cpp).
#include <fmt/format.h>

#include <chrono>

#include "core/log.h"
#include "server/server_impl.h"
#include "store/pull.h"
#include "store/store.h"

namespace edgellm::server {
namespace {

struct pull_cancelled {};

std::string model_field(const json& body) {
    auto name = opt_string(body, "model");
    if (!name || name->empty()) name = opt_string(body, "name");  // the older field name
    if (!name || name->empty()) throw http_error(400, "'model' is required");
    return *name;
}

int pull_error_status(const std::exception& e) {
    if (dynamic_cast<const usage_error*>(&e)) return 400;
    const std::string w = e.what();
    if (w.find("HTTP 404") != std::string::npos || w.find("not found") != std::string::npos) return 404;
    return 502;  // the registry or the network failed us
}

json progress_json(const store::pull_progress& p) {
    json j = {{"status", p.status}};
    if (!p.digest.empty()) j["digest"] = p.digest;
    if (p.total) j["total"] = p.total;
    if (p.total || p.completed) j["completed"] = p.completed;
    return j;
}

}  // namespace

json store_tags() {
    json out = json::array();
    const store::model_store st;
    std::vector<store::entry> entries;
    try {
        entries = st.list();
    } catch (const std::exception& e) {  // a damaged index must not take /api/tags down
        log::info("/api/tags: model store not listed: {}", e.what());
    }
    for (const auto& e : entries)
        out.push_back({{"name", e.name}, {"model", e.name}, {"modified_at", e.pulled_at}, {"size", e.size},
                       {"digest", e.blob.rfind("sha256-", 0) == 0 ? e.blob.substr(7) : e.blob},
                       {"details", {{"format", "gguf"}}}});
    return out;
}

void server::impl::add_store_routes() {
    post("/api/pull", api::ollama, wrap(api::ollama, [this](const http::request& req, http::response& res) {
              const json body = parse_body(req);
              const std::string ref = model_field(body);
              store::pull_options o;
              o.insecure = opt_bool(body, "insecure").value_or(false);
              store::parse_ref(ref);  // a malformed reference is a 400 before anything streams
              if (!opt_bool(body, "stream").value_or(true)) {
                  try {
                      store::pull(ref, o);
                  } catch (const std::exception& e) {
                      throw http_error(pull_error_status(e), e.what());
                  }
                  res.set_content(json{{"status", "success"}}.dump(), "application/json");
                  return;
              }
              res.set_chunked_content_provider(
                  "application/x-ndjson", [ref, o](http::data_sink& sink) {
                      using clock = std::chrono::steady_clock;
                      auto last = clock::now() - std::chrono::seconds(1);
                      std::string last_status;
                      auto send = [&](const json& j) {
                          const std::string line = j.dump() + "\n";
                          if (!sink.write(line.data(), line.size())) throw pull_cancelled{};
                      };
                      try {
                          store::pull(ref, o, [&](const store::pull_progress& p) {
                              // Every change of status, and download progress at most 4 times a second.
                              const auto now = clock::now();
                              if (p.status == last_status && p.completed != p.total &&
                                  now - last < std::chrono::milliseconds(250))
                                  return;
                              last = now;
                              last_status = p.status;
                              send(progress_json(p));
                          });
                      } catch (const pull_cancelled&) {
                          return false;  // the client left; a partial download stays for the next pull
                      } catch (const std::exception& e) {
                          try {
                              send({{"error", e.what()}});
                          } catch (const pull_cancelled&) {
                              return false;
                          }
                      }
                      sink.done();
                      return true;
                  });
          }));

    http_srv->route("DELETE", "/api/delete", wrap(api::ollama, [](const http::request& req, http::response& res) {
                    const std::string name = model_field(parse_body(req));
                    store::model_store st;
                    if (!st.remove(name)) throw http_error(404, fmt::format("model '{}' not found", name));
                    res.status = 200;
                }));
}

}  // namespace edgellm::server
