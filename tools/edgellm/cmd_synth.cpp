// `edgellm synth`: write a llama GGUF with deterministic random weights for tests and benchmarks.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "command.h"
#include "core/timing.h"
#include "core/units.h"
#include "model/synth.h"

namespace edgellm::cli {
namespace {

struct synth_flags {
    std::string output;
    synth::options opts;
    bool json = false;
    bool quiet = false;
};

void run_synth(const synth_flags& f) {
    synth::options opts = f.opts;
    const bool tty = isatty(fileno(stderr)) && !f.quiet && !f.json;
    if (tty) {
        opts.progress = [](size_t done, size_t total, const std::string& tensor, uint64_t bytes_done) {
            std::fprintf(stderr, "\r\033[K[%zu/%zu] %s (%s written)", done, total, tensor.c_str(),
                         format_bytes(bytes_done).c_str());
            if (done == total) std::fputc('\n', stderr);
            std::fflush(stderr);
        };
    }
    stopwatch sw;
    const auto s = synth::write_model(f.output, opts);
    const double ms = sw.elapsed_ms();
    if (f.json) {
        nlohmann::json j = {{"path", s.path},          {"shape", s.shape},           {"type", s.type},
                            {"n_params", s.n_params},  {"n_vocab", s.n_vocab},       {"file_bytes", s.file_bytes},
                            {"tensor_types", s.tensor_types}, {"seed", opts.seed},   {"elapsed_ms", ms}};
        std::puts(j.dump(2).c_str());
        return;
    }
    if (f.quiet) return;
    std::string mix;
    for (const auto& [type, n] : s.tensor_types) mix += fmt::format("{}{}: {}", mix.empty() ? "" : ", ", type, n);
    std::printf("wrote %s\n  shape %s, type %s, %s parameters, vocab %llu, %s, %.1f s\n  tensors: %s\n",
                s.path.c_str(), s.shape.c_str(), s.type.c_str(), format_count(s.n_params).c_str(),
                static_cast<unsigned long long>(s.n_vocab), format_bytes(s.file_bytes).c_str(), ms / 1000.0,
                mix.c_str());
}

void setup(CLI::App& app) {
    auto f = std::make_shared<synth_flags>();
    std::string shapes, types;
    for (const auto& s : synth::shapes()) shapes += (shapes.empty() ? "" : "|") + s.name;
    for (const auto& m : synth::type_mixes()) types += (types.empty() ? "" : "|") + m.name;
    auto* cmd = app.add_subcommand("synth", "Write a llama GGUF with deterministic random weights");
    cmd->footer(
        "Examples:\n"
        "  edgellm synth -o tiny.gguf                         # tiny test model, F16\n"
        "  edgellm synth --shape tinyllama-1.1b --type q4_k_m -o tl-q4km.gguf\n"
        "  edgellm synth --type q8_0 --vocab-from ../shared/tokenizer/ggml-vocab-llama-spm.gguf -o m.gguf\n"
        "Mixed types (q2_k, q3_k_m, q4_k_m, ...) follow llama.cpp's per-tensor rules; --pure\n"
        "gives every matrix the base type. Norm weights are always F32.");
    cmd->add_option("-o,--output", f->output, "Output GGUF path")->required();
    cmd->add_option("--shape", f->opts.shape, "Model shape: " + shapes)->capture_default_str();
    cmd->add_option("--type", f->opts.type, "Weight type or llama.cpp mix: " + types)->capture_default_str();
    cmd->add_option("--seed", f->opts.seed, "Random seed (same seed, same bytes)")->capture_default_str();
    cmd->add_option("--vocab-from", f->opts.vocab_from,
                    "Copy every tokenizer.* key from this GGUF (the vocab size follows it) instead of the "
                    "built-in byte-level SentencePiece vocab");
    cmd->add_option("--n-layer", f->opts.n_layer, "Override the shape's number of layers");
    cmd->add_flag("--pure", f->opts.pure, "Every weight matrix in the base type (no llama.cpp mix rules)");
    cmd->add_option("--name", f->opts.name, "general.name (default edgellm-synth-SHAPE-TYPE)");
    cmd->add_flag("--json", f->json, "Print the summary as JSON");
    cmd->add_flag("-q,--quiet", f->quiet, "Print nothing on success");
    cmd->callback([f] { run_synth(*f); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("synth", 90, setup);

}  // namespace edgellm::cli
