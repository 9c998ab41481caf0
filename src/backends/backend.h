// The one interface over every LLM backend (native engine, llama.cpp, Ollama, OpenAI-compatible
// servers, Python-hosted workers), with statistics measured the same way for all of them.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::backends {

struct chat_message {
    std::string role;     // "system" | "user" | "assistant" | "tool"
    std::string content;
};

struct generation_request {
    std::string prompt;                  // completion mode: raw prompt text
    std::vector<chat_message> messages;  // chat mode when non-empty (the backend applies its template)
    int n_predict = 128;                 // maximum tokens to generate
    float temperature = 0.8f;
    int top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.0f;
    std::optional<uint64_t> seed;
    std::vector<std::string> stop;
    bool chat() const { return !messages.empty(); }
};

// Figures of one generation. Client-side figures are measured identically for every backend
// (in backend::generate); the backend_* figures are what the backend itself reported, if anything.
struct generation_stats {
    int64_t n_prompt_tokens = -1;        // -1: unknown (backend did not say)
    int64_t n_gen_tokens = 0;            // from the backend when reported, else streamed chunks
    // True when n_gen_tokens was counted from streamed pieces because the backend reported no
    // count: an estimate (a piece can hold several tokens, e.g. a split UTF-8 character).
    bool n_gen_tokens_estimated = false;
    // edgellm's own clock, for every backend: request sent -> first non-empty streamed piece
    // (the end of the stream when the only token had no text; NaN when nothing was generated),
    // request sent -> end of the stream, gaps between pieces.
    double ttft_ms = 0;
    double total_ms = 0;
    double last_piece_ms = 0;            // request sent -> last non-empty piece
    std::vector<double> inter_token_ms;  // gaps between streamed pieces (client side)
    int64_t n_pieces = 0;                // non-empty pieces streamed
    // Throughput by edgellm's clock: prefill = n_prompt / TTFT; decode = (n_gen - 1) / (last
    // piece - first piece). The native engine, in this process, times its own prefill and
    // decode passes and sets them itself. 0 = not measured (see notes).
    double prefill_tokens_per_s = 0;
    double decode_tokens_per_s = 0;
    // The backend's own figures from its reported timings (llama-server `timings`, Ollama
    // durations, a worker's counters): an extra, shown beside edgellm's; nullopt when it gave
    // none, or none that means anything (fewer than 2 generated tokens).
    std::optional<double> server_prefill_tokens_per_s;
    std::optional<double> server_decode_tokens_per_s;
    // Why a figure is missing ("decode: 1 token generated, no decode interval").
    std::vector<std::string> notes;
    std::optional<double> backend_prompt_ms;  // backend-reported prompt processing time
    std::optional<double> backend_decode_ms;  // backend-reported generation time
    std::optional<double> backend_load_ms;    // backend-reported model load time
    std::optional<uint64_t> backend_memory_bytes;       // e.g. Ollama /api/ps size
    std::optional<uint64_t> backend_gpu_memory_bytes;   // e.g. Ollama /api/ps size_vram
    // Speculative decoding (native --model-draft): share of the drafted tokens the model kept.
    std::optional<double> draft_acceptance;
};

struct generation_result {
    std::string text;
    std::string finish_reason;  // "stop" | "length" | "cancelled" | backend-specific
    generation_stats stats;
    // The token ids of the prompt and of the generated tokens, when the backend tells them
    // (native, the Python workers); empty otherwise. Comparing backends on one model compares these.
    std::vector<int32_t> prompt_tokens;
    std::vector<int32_t> tokens;
};

// Receives each streamed piece of text as it arrives; return false to cancel.
using token_callback = std::function<bool(std::string_view piece)>;

struct availability {
    bool available = false;
    std::string reason;  // why not (or what was found, when available)
    std::string hint;    // how to get it
};

struct backend_settings {
    std::string model;             // GGUF path, Ollama tag, served model name ...
    std::string base_url;          // for HTTP backends; empty = backend default
    int n_threads = 0;             // 0 = backend/device default
    int n_ctx = 0;
    int n_batch = 0;
    int n_gpu_layers = -1;         // -1 = backend default
    double timeout_s = 120;        // every network call is bounded by this
    double connect_timeout_s = 5;
    std::map<std::string, std::string> extra;  // backend-specific options ("binary", "preset" ...)
};

// One embeddings call (`edgellm bench --embed`): what a backend embedded and how long the work
// took, model loading excluded.
struct embed_stats {
    int64_t n_inputs = 0;
    int64_t n_tokens = 0;  // tokens the inputs ran as, special tokens included
    int64_t n_embd = 0;
    double ms = 0;
};

class backend {
public:
    virtual ~backend() = default;
    virtual std::string name() const = 0;
    virtual std::string description() const = 0;
    virtual availability check_available(const backend_settings& settings) const = 0;

    // Loads (or connects to) the model; throws edgellm::error with a clear message on failure.
    virtual void load(const backend_settings& settings) = 0;
    virtual void unload() = 0;
    // How the load departed from what was asked (the native engine's fallback rung, e.g.
    // "fallback: Q8_0 KV cache, context 256 (...)"); empty when it loaded as asked.
    virtual std::string load_note() const { return {}; }
    double load_ms() const { return load_ms_; }
    // The OS process doing the work when it is not this one (a server or worker the backend
    // started), so its memory and CPU can be sampled; nullopt when unknown or in-process.
    virtual std::optional<int> process_id() const { return std::nullopt; }

    // Runs one request, streaming pieces to on_piece, and measures client-side statistics.
    // `cancel` (may be null) is polled between pieces.
    generation_result generate(const generation_request& req, const token_callback& on_piece,
                               const std::atomic<bool>* cancel = nullptr);

    // Embeds every text (the backend's default pooling, L2-normalised) in as few calls as the
    // backend batches them. Needs a load with settings.extra["embedding"] = "1" (which loads the
    // model for embeddings: an encoder, or a decoder's hidden states). Backends without
    // embeddings throw usage_error naming themselves.
    virtual embed_stats embed(const std::vector<std::string>& texts);

protected:
    // Backends implement this: stream pieces through `emit` (which records timings and returns
    // false when the caller wants to stop) and fill backend-reported figures in `result.stats`.
    virtual void do_generate(const generation_request& req,
                             const std::function<bool(std::string_view)>& emit,
                             generation_result& result) = 0;
    double load_ms_ = 0;
};

struct backend_info {
    std::string name;
    std::string description;
    std::vector<std::string> aliases;
    std::function<std::unique_ptr<backend>()> create;
};

// Every backend edgellm knows, in display order.
const std::vector<backend_info>& registry();
// Looks a backend up by name or alias ("llama.cpp", "llamacpp" ...); throws usage_error listing
// the known names when there is none.
const backend_info& find_backend(std::string_view name);
std::unique_ptr<backend> create_backend(std::string_view name);

}  // namespace edgellm::backends
