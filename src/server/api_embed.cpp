// Embeddings routes: Ollama /api/embed (input string or list, truncate) and the legacy
// /api/embeddings (prompt, unnormalised vector, as Ollama answers it), OpenAI /v1/embeddings
// (input string, list of strings, token ids or lists of them; encoding_format float or base64;
// dimensions only when it is the model's own). Requests run one at a time on the calling HTTP
// thread, on an embedder made on first use (its own KV cache and scratch over the shared weights).
#include <fmt/format.h>

#include <cstring>

#include "core/timing.h"
#include "engine/embed.h"
#include "server/server_impl.h"

namespace edgellm::server {
namespace {

// Raw little-endian float32 bytes in base64, what OpenAI's encoding_format "base64" returns.
std::string base64_floats(const std::vector<float>& v) {
    static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string bytes(v.size() * sizeof(float), '\0');
    if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());  // x86 / ARM: little-endian
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const uint32_t b0 = static_cast<uint8_t>(bytes[i]);
        const uint32_t b1 = i + 1 < bytes.size() ? static_cast<uint8_t>(bytes[i + 1]) : 0;
        const uint32_t b2 = i + 2 < bytes.size() ? static_cast<uint8_t>(bytes[i + 2]) : 0;
        const uint32_t n = (b0 << 16) | (b1 << 8) | b2;
        out += k[(n >> 18) & 63];
        out += k[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? k[(n >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? k[n & 63] : '=';
    }
    return out;
}

// A string or a non-empty list of strings (Ollama "input", OpenAI "input" text forms).
std::vector<std::string> string_inputs(const json& v, const char* field) {
    if (v.is_string()) return {v.get<std::string>()};
    if (!v.is_array())
        throw http_error(400, fmt::format("'{}' must be a string or an array of strings", field));
    std::vector<std::string> out;
    for (const json& e : v) {
        if (!e.is_string())
            throw http_error(400,
                             fmt::format("'{}' must be a string or an array of strings", field));
        out.push_back(e.get<std::string>());
    }
    return out;
}

}  // namespace

engine::embed_result server::impl::run_embeddings(const std::vector<std::string>* texts,
                                                  const std::vector<std::vector<int32_t>>* ids,
                                                  const engine::embed_options& o) {
    std::lock_guard lock(embed_mu);
    try {
        if (!embedder)
            embedder = std::make_unique<engine::embedder>(lm, embed_threads(), p.embed_ctx);
        return texts ? embedder->embed(*texts, o) : embedder->embed_tokens(*ids, o);
    } catch (const usage_error& e) {
        throw http_error(400, e.what());
    }
}

void server::impl::add_embed_routes() {
    const auto ollama_embed = [this](const http::request& req, http::response& res) {
        const json body = parse_body(req);
        check_model(body, api::ollama, /*required=*/true);
        if (!body.contains("input"))
            throw http_error(400, "'input' is required (a string or an array of strings)");
        const std::vector<std::string> texts = string_inputs(body["input"], "input");
        if (texts.empty()) throw http_error(400, "'input' is an empty array");
        if (body.contains("dimensions") && !body["dimensions"].is_null() &&
            opt_int(body, "dimensions").value_or(0) != lm->hparams().n_embd)
            throw http_error(
                400,
                fmt::format(
                    "'dimensions' is not supported: this model's embeddings have {} dimensions",
                    lm->hparams().n_embd));
        engine::embed_options o;
        o.truncate = opt_bool(body, "truncate").value_or(true);
        stopwatch sw;
        const engine::embed_result r = run_embeddings(&texts, nullptr, o);
        int64_t n_tok = 0;
        for (int64_t n : r.n_tokens) n_tok += n;
        json out = {{"model", p.model_name},
                    {"embeddings", r.vectors},
                    {"total_duration", static_cast<int64_t>(sw.elapsed_ms() * 1e6)},
                    {"load_duration", 0},
                    {"prompt_eval_count", n_tok}};
        res.set_content(out.dump(), "application/json");
    };
    post("/api/embed", api::ollama, wrap(api::ollama, ollama_embed));

    post("/api/embeddings", api::ollama,
         wrap(api::ollama, [this](const http::request& req, http::response& res) {
             const json body = parse_body(req);
             check_model(body, api::ollama, /*required=*/true);
             const std::optional<std::string> prompt = opt_string(body, "prompt");
             if (!prompt) throw http_error(400, "'prompt' is required (a string)");
             const std::vector<std::string> texts = {*prompt};
             engine::embed_options o;
             o.normalize = false;  // Ollama's legacy endpoint returns the raw pooled vector
             const engine::embed_result r = run_embeddings(&texts, nullptr, o);
             res.set_content(json{{"embedding", r.vectors[0]}}.dump(), "application/json");
         }));

    post("/v1/embeddings", api::openai,
         wrap(api::openai, [this](const http::request& req, http::response& res) {
             const json body = parse_body(req);
             check_model(body, api::openai, /*required=*/false);
             if (!body.contains("input")) throw http_error(400, "'input' is required");
             const json& in = body["input"];
             const std::string format = opt_string(body, "encoding_format").value_or("float");
             if (format != "float" && format != "base64")
                 throw http_error(
                     400, fmt::format("'encoding_format' must be 'float' or 'base64', got '{}'",
                                      format));
             if (auto d = opt_int(body, "dimensions"); d && *d != lm->hparams().n_embd)
                 throw http_error(
                     400, fmt::format(
                              "'dimensions' = {} is not supported: this model's embeddings have {} "
                              "dimensions and cannot be shortened",
                              *d, lm->hparams().n_embd));
             opt_string(body, "user");
             // Token ids: an array of integers (one input) or an array of such arrays.
             std::vector<std::vector<int32_t>> ids;
             std::vector<std::string> texts;
             const auto to_ids = [](const json& a) {
                 std::vector<int32_t> t;
                 for (const json& e : a) {
                     if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
                         e.get<int64_t>() > INT32_MAX)
                         throw http_error(400, "'input' token ids must be non-negative integers");
                     t.push_back(static_cast<int32_t>(e.get<int64_t>()));
                 }
                 return t;
             };
             if (in.is_array() && !in.empty() && in[0].is_number()) {
                 ids.push_back(to_ids(in));
             } else if (in.is_array() && !in.empty() && in[0].is_array()) {
                 for (const json& a : in) {
                     if (!a.is_array())
                         throw http_error(400, "'input' mixes token-id arrays with other values");
                     ids.push_back(to_ids(a));
                 }
             } else {
                 texts = string_inputs(in, "input");
             }
             if (ids.empty() && texts.empty()) throw http_error(400, "'input' is empty");
             engine::embed_options o;
             const engine::embed_result r = texts.empty() ? run_embeddings(nullptr, &ids, o)
                                                          : run_embeddings(&texts, nullptr, o);
             json data = json::array();
             int64_t n_tok = 0;
             for (size_t i = 0; i < r.vectors.size(); ++i) {
                 json e = {{"object", "embedding"}, {"index", i}};
                 if (format == "base64")
                     e["embedding"] = base64_floats(r.vectors[i]);
                 else
                     e["embedding"] = r.vectors[i];
                 data.push_back(std::move(e));
                 n_tok += r.n_tokens[i];
             }
             json out = {{"object", "list"},
                         {"data", std::move(data)},
                         {"model", p.model_name},
                         {"usage", {{"prompt_tokens", n_tok}, {"total_tokens", n_tok}}}};
             res.set_content(out.dump(), "application/json");
         }));
}

}  // namespace edgellm::server
