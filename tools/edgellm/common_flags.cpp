// The shared engine and sampling flags (see common_flags.h).
#include "common_flags.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "sampling/grammar.h"
#include "sampling/json_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/units.h"
#include "model/kv_cache.h"
#include "quant/ggml_type.h"

namespace edgellm::cli {

void session_flags::add_to(CLI::App* cmd, const std::string& ctx_help) {
    cmd->add_option("-t,--threads", n_threads, "threads (default: all hardware threads)");
    cmd->add_option("--tb,--threads-batch", n_threads_batch, "threads for prompt processing (default: as -t; also spelled -tb)");
    cmd->add_option("-c,--ctx-size", n_ctx, ctx_help);
    cmd->add_option("-b,--batch-size", n_batch, fmt::format("tokens per forward pass / prefill chunk (default {})", n_batch));
    cmd->add_option("--kv-type,--cache-type-k,--ctk", kv_type,
                    "KV cache type: f16 (default), f32, q8_0 (about half of f16's memory) or q4_0 (about a quarter)");
    cmd->add_option("--ngl,--n-gpu-layers,--gpu-layers", n_gpu_layers,
                    "layers to run on a CUDA GPU, the last ones; more than the layer count also offloads the output layer "
                    "(also spelled -ngl; default 0; refused with the reason where it cannot be done)");
    cmd->add_option("--memory-limit", memory_limit,
                    "memory the weights + KV cache may take (e.g. 6G, 512M); default: what is available now");
    cmd->add_flag("--no-fallback", no_fallback,
                  "refuse when the request does not fit instead of falling back to a smaller context / KV type");
    cmd->add_option("--fa,--flash-attn", flash_attn,
                    "attention kernel: auto (default: flash attention for prompt chunks, per-token for decode), "
                    "on (flash everywhere) or off (also spelled -fa)");
    cmd->add_flag("--no-repack", no_repack,
                  "use the weights as stored in the file instead of the faster packed copy made at load");
    cmd->add_flag("--deterministic", deterministic,
                  "batch-invariant kernels: a sequence's output does not depend on what else is in its batch, so "
                  "concurrent greedy requests give exactly their single-stream text (slower prompt processing; CPU only)");
    cmd->add_flag("--swa-full", swa_full,
                  "sliding-window layers (Gemma 2/3, Mistral) keep every position of the context instead of only "
                  "about their window (more memory; as llama.cpp's --swa-full)");
    cmd->add_flag("--no-prefix-cache", no_prefix_cache,
                  "do not reuse the KV cache of a prompt prefix an earlier request or chat turn left (automatic "
                  "prefix caching is on by default, off with GPU layers)");
}

engine::engine_params session_flags::params() const {
    if (n_threads == 0 || n_threads < -1) throw usage_error(fmt::format("-t must be at least 1, got {}", n_threads));
    if (n_threads_batch == 0 || n_threads_batch < -1)
        throw usage_error(fmt::format("--threads-batch must be at least 1, got {}", n_threads_batch));
    if (n_ctx < 0) throw usage_error(fmt::format("-c must be positive, got {}", n_ctx));
    if (n_batch <= 0) throw usage_error(fmt::format("-b must be positive, got {}", n_batch));
    engine::engine_params ep;
    ep.model_path = model;
    ep.n_ctx = n_ctx;
    ep.n_batch = n_batch;
    ep.n_threads = n_threads > 0 ? n_threads : 0;
    ep.n_threads_batch = n_threads_batch > 0 ? n_threads_batch : 0;
    ep.repack = !no_repack;
    ep.prefix_cache = !no_prefix_cache;
    ep.deterministic = deterministic;
    ep.swa_full = swa_full;
    if (n_gpu_layers < -1) throw usage_error(fmt::format("-ngl must be >= 0, got {}", n_gpu_layers));
    ep.n_gpu_layers = std::max(n_gpu_layers, 0);
    if (!memory_limit.empty()) ep.memory_budget_bytes = parse_size(memory_limit, "--memory-limit");
    ep.fallback = !no_fallback;
    const auto t = type_from_name(kv_type);
    if (!t || !model::kv_type_supported(*t))
        throw usage_error(fmt::format("--kv-type must be f16, f32, q8_0 or q4_0, got '{}'", kv_type));
    ep.kv_type = *t;
    const auto fa = model::parse_flash_attn(flash_attn);
    if (!fa) throw usage_error(fmt::format("--flash-attn must be auto, on or off, got '{}'", flash_attn));
    ep.flash_attn = *fa;
    return ep;
}

void draft_flags::add_to(CLI::App* cmd, const std::string& model_help) {
    cmd->add_option("--model-draft,--md", model, model_help);
    cmd->add_option("--draft-max,--draft", spec.draft_max,
                    fmt::format("tokens drafted per verification (default {})", spec.draft_max));
    cmd->add_option("--draft-min", spec.draft_min, "decode plainly when fewer than this many tokens could be drafted (default 0)");
    cmd->add_option("--spec-ngram", spec_ngram,
                    "speculative decoding without a draft model: draft the continuation of the latest earlier match of "
                    "the last N..1 tokens in the prompt and output (prompt lookup), up to --draft-max tokens");
}

engine::speculation_params draft_flags::ngram() const {
    if (spec_ngram < 0) throw usage_error(fmt::format("--spec-ngram must be at least 1, got {}", spec_ngram));
    if (spec_ngram == 0) return {};
    if (given()) throw usage_error("give either --model-draft or --spec-ngram, not both");
    engine::check_speculative_params(spec);
    return {spec_ngram, spec.draft_max, std::max(1, spec.draft_min), nullptr};
}

void sampling_flags::add_to(CLI::App* cmd) {
    cmd->add_option("--temp", p.temperature, fmt::format("temperature; 0 = greedy (default {})", p.temperature));
    cmd->add_option("--top-k", p.top_k, fmt::format("top-k, 0 = off (default {})", p.top_k));
    cmd->add_option("--top-p", p.top_p, fmt::format("top-p, 1 = off (default {})", p.top_p));
    cmd->add_option("--min-p", p.min_p, fmt::format("min-p, 0 = off (default {})", p.min_p));
    cmd->add_option("--repeat-penalty", p.repeat_penalty,
                    fmt::format("repetition penalty, 1 = off (default {})", p.repeat_penalty));
    cmd->add_option("--repeat-last-n", p.penalty_last_n,
                    fmt::format("tokens the penalties look back on (default {})", p.penalty_last_n));
    cmd->add_option("--frequency-penalty", p.frequency_penalty,
                    fmt::format("frequency penalty (default {})", p.frequency_penalty));
    cmd->add_option("--presence-penalty", p.presence_penalty,
                    fmt::format("presence penalty (default {})", p.presence_penalty));
    cmd->add_option("-s,--seed", seed, "sampling seed (default: random)");
}

sampling::sampling_params sampling_flags::params() const {
    if (p.top_k < 0) throw usage_error(fmt::format("--top-k must be >= 0, got {}", p.top_k));
    sampling::sampling_params out = p;
    out.seed = seed >= 0 ? static_cast<uint64_t>(seed) : sampling::random_seed();
    sampling::validate(out);
    return out;
}

}  // namespace edgellm::cli

namespace edgellm::cli {

void grammar_flags::add_to(CLI::App* cmd) {
    cmd->add_option("--grammar", grammar, "constrain the output to this GBNF grammar (llama.cpp's format)");
    cmd->add_option("--grammar-file", grammar_file, "constrain the output to the GBNF grammar in this file");
    cmd->add_option("-j,--json-schema", json_schema,
                    "constrain the output to JSON this schema accepts (a file, or the schema inline)");
    cmd->add_flag("--json-mode", json_mode, "constrain the output to a JSON object");
}

namespace {
std::string read_text_file(const std::string& path, const std::string& flag) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw usage_error(fmt::format("{}: cannot read '{}'", flag, path));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
}  // namespace

std::shared_ptr<const sampling::grammar> grammar_flags::load() const {
    const int n = !grammar.empty() + !grammar_file.empty() + !json_schema.empty() + json_mode;
    if (n > 1) throw usage_error("give only one of --grammar, --grammar-file, --json-schema and --json-mode");
    if (json_mode) return sampling::json_object_grammar();
    if (!grammar.empty()) return sampling::parse_grammar(grammar);
    if (!grammar_file.empty()) {
        try {
            return sampling::parse_grammar(read_text_file(grammar_file, "--grammar-file"));
        } catch (const sampling::grammar_error& e) {
            throw usage_error(fmt::format("{}: {}", grammar_file, e.what()));
        }
    }
    if (json_schema.empty()) return nullptr;
    const bool inline_json = json_schema.find_first_not_of(" \t\r\n") != std::string::npos &&
                             (json_schema[json_schema.find_first_not_of(" \t\r\n")] == '{' ||
                              json_schema[json_schema.find_first_not_of(" \t\r\n")] == '[');
    const std::string text = inline_json ? json_schema : read_text_file(json_schema, "--json-schema");
    nlohmann::ordered_json schema;
    try {
        schema = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        throw usage_error(fmt::format("--json-schema: invalid JSON: {}", e.what()));
    }
    return sampling::json_schema_to_grammar(schema);
}

}  // namespace edgellm::cli
