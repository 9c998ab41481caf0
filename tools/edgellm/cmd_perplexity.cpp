// `edgellm perplexity`: llama-perplexity's chunked perplexity of a text file under a model,
// printing the running estimate per chunk and the final PPL with its standard error.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "command.h"
#include "common_flags.h"
#include "core/error.h"
#include "engine/engine.h"
#include "quality/perplexity.h"
#include "tokenizer/vocab.h"

namespace edgellm::cli {
namespace {

struct perplexity_options {
    session_flags session;
    std::string text_file;
    int n_chunks = -1;
    bool json = false;
};

void run_perplexity(perplexity_options& o) {
    if (o.session.model.empty()) throw usage_error("no model given: use -m MODEL.gguf");
    if (o.text_file.empty()) throw usage_error("no text given: use -f TEXT_FILE");
    std::ifstream in(o.text_file, std::ios::binary);
    if (!in) throw usage_error(fmt::format("cannot read the text file '{}'", o.text_file));
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    if (o.session.n_ctx == 0) o.session.n_ctx = 512;  // llama-perplexity's customary context
    engine::engine_params ep = o.session.params();
    ep.n_batch = std::min(ep.n_batch, ep.n_ctx);
    engine::engine eng(ep);
    const tokenizer* tok = eng.shared_model()->get_tokenizer();
    if (!tok) throw usage_error("the model has no usable tokenizer: " + eng.shared_model()->tokenizer_error());
    // As llama-perplexity: BOS when the model adds one, special-token text not parsed.
    const std::vector<int32_t> tokens = tok->encode(text, /*add_bos=*/true, /*parse_special=*/false);
    const int32_t bos = tok->add_bos() ? tok->bos() : -1;
    const int64_t n_ctx = eng.params().n_ctx;
    std::fprintf(stderr, "perplexity: %zu tokens, chunks of %lld (scoring the second half), batch %lld, %d threads\n",
                 tokens.size(), static_cast<long long>(n_ctx), static_cast<long long>(eng.params().n_batch),
                 eng.params().n_threads);
    auto on_chunk = [&](int i, double ppl) {
        if (o.json) return;
        std::printf("[%d]%.4f,", i + 1, ppl);
        std::fflush(stdout);
    };
    const quality::perplexity_result r = quality::perplexity(eng, tokens, bos, o.n_chunks, on_chunk);
    if (o.json) {
        nlohmann::json j = {{"model", o.session.model}, {"text_file", o.text_file}, {"n_ctx", n_ctx},
                            {"n_batch", eng.params().n_batch}, {"n_tokens", r.n_tokens}, {"n_chunks", r.n_chunks},
                            {"n_scored", r.n_scored}, {"ppl", r.ppl}, {"ppl_stderr", r.ppl_stderr},
                            {"chunk_ppl", r.chunk_ppl}, {"eval_ms", r.eval_ms}};
        std::puts(j.dump(2).c_str());
        return;
    }
    std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    std::fprintf(stderr, "%d chunks, %lld tokens scored, %.1f s (%.1f tokens/s)\n", r.n_chunks,
                 static_cast<long long>(r.n_scored), r.eval_ms / 1000.0,
                 r.eval_ms > 0 ? 1000.0 * static_cast<double>(r.n_chunks * n_ctx) / r.eval_ms : 0.0);
}

void setup(CLI::App& app) {
    auto opts = std::make_shared<perplexity_options>();
    CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a text under a model (llama-perplexity's method)");
    cmd->footer(
        "The text is cut into chunks of -c tokens; each chunk starts from an empty cache (its first token\n"
        "replaced by BOS) and the second half of every chunk is scored. Needs at least 2 x -c tokens.\n"
        "KL-divergence against a base model (--kl-divergence) is not implemented yet.\n"
        "Examples:\n"
        "  edgellm perplexity -m model.gguf -f wiki.test.raw -c 512\n"
        "  edgellm perplexity -m stories260K.gguf -f /usr/share/common-licenses/GPL-3 -c 128 -b 128\n");
    cmd->add_option("-m,--model", opts->session.model, "GGUF model file")->required();
    cmd->add_option("-f,--file", opts->text_file, "text file to score")->required();
    cmd->add_option("--chunks", opts->n_chunks, "score at most this many chunks (default: all)");
    cmd->add_flag("--json", opts->json, "print the result as JSON");
    opts->session.add_to(cmd, "tokens per chunk (default 512)");
    cmd->callback([opts] { run_perplexity(*opts); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("perplexity", 45, setup);

}  // namespace edgellm::cli
