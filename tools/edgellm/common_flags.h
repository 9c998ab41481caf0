// Flags shared by the commands that run the native engine (run, chat, serve): the model and
// session settings and the sampling chain, declared once with defaults taken from the engine's
// own parameter structs, so every command spells and defaults them the same way.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "engine/engine.h"
#include "engine/speculative.h"
#include "sampling/sampler.h"

namespace edgellm::cli {

struct session_flags {
    std::string model;
    int n_threads = -1;  // -1: not given (all hardware threads)
    int n_threads_batch = -1;  // -1: not given (same as -t)
    int64_t n_ctx = 0;
    int64_t n_batch = engine::engine_params{}.n_batch;
    std::string kv_type = "f16";
    bool no_repack = false;
    int n_gpu_layers = -1;  // -1: not given
    std::string memory_limit;  // --memory-limit SIZE; empty: what the machine has available
    bool no_fallback = false;
    std::string flash_attn = "auto";  // --flash-attn auto|on|off
    bool no_prefix_cache = false;     // --no-prefix-cache
    bool deterministic = false;       // --deterministic
    bool swa_full = false;            // --swa-full

    // -t -tb -c -b --kv-type --no-repack -ngl (the model option is added by each command: its spelling differs).
    void add_to(CLI::App* cmd, const std::string& ctx_help = "context size (default: model's, at most 4096)");
    // Validates the values and fills the engine's parameters.
    engine::engine_params params() const;
};

// --model-draft/-md --draft-max --draft-min (speculative decoding; run and serve).
struct draft_flags {
    std::string model;  // empty: no draft
    engine::speculative_params spec;
    void add_to(CLI::App* cmd, const std::string& model_help);
    bool given() const { return !model.empty(); }
    int spec_ngram = 0;  // --spec-ngram N: prompt-lookup drafts inside the scheduler
    // The scheduler's speculation settings for --spec-ngram (disabled without it); usage_error
    // for a bad N or with --model-draft too.
    engine::speculation_params ngram() const;
};

struct sampling_flags {
    sampling::sampling_params p;  // defaults from the sampler
    int64_t seed = -1;            // -1: random

    // --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n --frequency-penalty
    // --presence-penalty -s/--seed
    void add_to(CLI::App* cmd);
    // The sampling parameters with the seed resolved (a random one when none was given), validated.
    sampling::sampling_params params() const;
};

// --grammar --grammar-file --json-schema --json-mode: constrained decoding (run).
struct grammar_flags {
    std::string grammar;       // GBNF text
    std::string grammar_file;  // GBNF file
    std::string json_schema;   // a file, or inline JSON
    bool json_mode = false;    // any JSON object
    void add_to(CLI::App* cmd);
    bool given() const { return !grammar.empty() || !grammar_file.empty() || !json_schema.empty() || json_mode; }
    // The grammar to follow, null when none was given; usage_error naming the flag, and the line
    // and column, for a bad grammar or schema, or for more than one of the flags.
    std::shared_ptr<const sampling::grammar> load() const;
};

}  // namespace edgellm::cli
