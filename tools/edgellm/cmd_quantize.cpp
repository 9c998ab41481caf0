// `edgellm quantize IN.gguf OUT.gguf TYPE`: llama-quantize's job (same mixes, same per-tensor
// rules, bit-exact quantizers) with a progress line and a summary.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "command.h"
#include "core/error.h"
#include "core/units.h"
#include "quality/quantize.h"
#include "quant/mix.h"

namespace edgellm::cli {
namespace {

struct quantize_flags {
    std::string input, output, type, imatrix;
    quality::quantize_options opts;
    bool json = false, quiet = false, dry_run = false;
};

void print_plan(const std::vector<quality::quantized_tensor>& plan) {
    for (const auto& q : plan)
        std::printf("%-40s %6s -> %-6s %8lld x %-8lld %10s\n", q.name.c_str(), std::string(type_name(q.from)).c_str(),
                    std::string(type_name(q.to)).c_str(), static_cast<long long>(q.ne0),
                    static_cast<long long>(q.n_rows), format_bytes(q.bytes_out).c_str());
}

void run_quantize(quantize_flags& f) {
    if (!f.imatrix.empty())
        throw usage_error("--imatrix is not implemented yet: edgellm quantizes without an importance matrix "
                          "(as llama-quantize does when none is given)");
    f.opts.type = f.type;
    find_type_mix(f.type);  // an unknown type fails before the input is opened
    if (f.dry_run) {
        print_plan(quality::plan_quantization(f.input, f.opts));
        return;
    }
    const bool tty = isatty(fileno(stderr)) && !f.quiet && !f.json;
    if (tty) {
        f.opts.progress = [](size_t done, size_t total, const std::string& tensor, uint64_t in_done, uint64_t in_total) {
            const double pct = in_total ? 100.0 * static_cast<double>(in_done) / static_cast<double>(in_total) : 100.0;
            std::fprintf(stderr, "\r\033[K[%3.0f%%] %zu/%zu %s", pct, done, total, done == total ? "done" : tensor.c_str());
            if (done == total) std::fputc('\n', stderr);
            std::fflush(stderr);
        };
    }
    const auto r = quality::quantize_model(f.input, f.output, f.opts);
    if (f.json) {
        nlohmann::json tensors = nlohmann::json::array();
        for (const auto& q : r.tensors)
            tensors.push_back({{"name", q.name},
                               {"from", type_name(q.from)},
                               {"to", type_name(q.to)},
                               {"ne0", q.ne0},
                               {"rows", q.n_rows},
                               {"bytes", q.bytes_out}});
        nlohmann::json j = {{"input", r.input},         {"output", r.output},       {"type", r.type},
                            {"file_type", r.file_type}, {"n_params", r.n_params},   {"bytes_in", r.bytes_in},
                            {"bytes_out", r.bytes_out}, {"seconds", r.seconds},     {"threads", r.n_threads},
                            {"tensor_types", r.tensor_types}, {"tensors", tensors}};
        std::puts(j.dump(2).c_str());
        return;
    }
    if (f.quiet) return;
    std::string mix;
    for (const auto& [type, n] : r.tensor_types) mix += fmt::format("{}{}: {}", mix.empty() ? "" : ", ", type, n);
    const double bpw = r.n_params ? 8.0 * static_cast<double>(r.bytes_out) / static_cast<double>(r.n_params) : 0.0;
    std::printf("wrote %s (%s)\n  %s -> %s, %.2f bits per weight, %s parameters, %.1f s on %d threads\n  tensors: %s\n",
                r.output.c_str(), r.type.c_str(), format_bytes(r.bytes_in).c_str(), format_bytes(r.bytes_out).c_str(),
                bpw, format_count(r.n_params).c_str(), r.seconds, r.n_threads, mix.c_str());
}

void setup(CLI::App& app) {
    auto f = std::make_shared<quantize_flags>();
    std::string types;
    for (const auto& m : type_mixes()) types += (types.empty() ? "" : ", ") + m.name;
    auto* cmd = app.add_subcommand("quantize", "Quantize a GGUF model (llama-quantize's mixes and rules)");
    cmd->footer(
        "Types: " + types +
        "\n"
        "Mixes (q2_k, q3_k_m, q4_k_m, ...) give each tensor llama.cpp's type for it (output.weight Q6_K,\n"
        "attn_v / ffn_down / attn_output bumped per layer); --pure gives every matrix the base type.\n"
        "Norms stay F32. The quantizers are bit-exact with ggml's, so the output equals llama-quantize's\n"
        "for the same input and type. Not yet: --imatrix (importance-matrix quantization), IQ types.\n"
        "Examples:\n"
        "  edgellm quantize model-f16.gguf model-q4_k_m.gguf q4_k_m\n"
        "  edgellm quantize model-f16.gguf model-q8_0.gguf q8_0 -t 4 --json");
    cmd->add_option("input", f->input, "Input GGUF (F32, F16 or BF16 weights)")->required()->check(CLI::ExistingFile);
    cmd->add_option("output", f->output, "Output GGUF (written to a temporary name, renamed at the end)")->required();
    cmd->add_option("type", f->type, "Type or mix: " + types)->required();
    cmd->add_option("-t,--threads", f->opts.n_threads, "Threads (default: every core)");
    cmd->add_flag("--allow-requantize", f->opts.allow_requantize,
                  "Accept input tensors that are already quantized (loses accuracy twice)");
    cmd->add_flag("--pure", f->opts.pure, "Every weight matrix in the base type (no per-tensor mix rules)");
    cmd->add_option("--imatrix", f->imatrix, "Importance matrix file (not implemented yet: refused)");
    cmd->add_flag("--dry-run", f->dry_run, "Print each tensor's output type and size; write nothing");
    cmd->add_flag("--json", f->json, "Print the summary as JSON");
    cmd->add_flag("-q,--quiet", f->quiet, "Print nothing on success");
    cmd->callback([f] { run_quantize(*f); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("quantize", 47, setup);

}  // namespace edgellm::cli
