// `edgellm perplexity`: llama-perplexity's chunked perplexity of a text file under a model,
// printing the running estimate per chunk and the final PPL with its standard error.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>

#include "command.h"
#include "common_flags.h"
#include "core/error.h"
#include "engine/engine.h"
#include "quality/kl_divergence.h"
#include "quality/perplexity.h"
#include "tokenizer/vocab.h"

namespace edgellm::cli {
namespace {

struct perplexity_options {
    session_flags session;
    std::string text_file;
    int n_chunks = -1;
    bool json = false;
    std::string kld_base;  // write the base log-probabilities here
    std::string kld;       // compare against this base file
};

void run_perplexity(perplexity_options& o) {
    if (o.session.model.empty()) throw usage_error("no model given: use -m MODEL.gguf");
    if (!o.kld.empty() && !o.kld_base.empty())
        throw usage_error("give either --kl-divergence-base (write) or --kl-divergence (compare), not both");
    std::optional<quality::kld_base_reader> base;
    if (!o.kld.empty()) {
        base.emplace(o.kld);
        if (o.session.n_ctx != 0 && o.session.n_ctx != base->header().n_ctx)
            throw usage_error(fmt::format("-c {} differs from the base file's context of {}", o.session.n_ctx,
                                          base->header().n_ctx));
        o.session.n_ctx = base->header().n_ctx;
    } else if (o.text_file.empty()) {
        throw usage_error("no text given: use -f TEXT_FILE");
    }
    if (o.session.n_ctx == 0) o.session.n_ctx = 512;  // llama-perplexity's customary context
    engine::engine_params ep = o.session.params();
    ep.n_batch = std::min(ep.n_batch, ep.n_ctx);
    std::string text;
    if (!base) {
        std::ifstream in(o.text_file, std::ios::binary);
        if (!in) throw usage_error(fmt::format("cannot read the text file '{}'", o.text_file));
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    engine::engine eng(ep);
    const tokenizer* tok = eng.shared_model()->get_tokenizer();
    if (!tok) throw usage_error("the model has no usable tokenizer: " + eng.shared_model()->tokenizer_error());
    // As llama-perplexity: BOS when the model adds one, special-token text not parsed. With a
    // base file its tokens are used, so both runs score exactly the same positions.
    const std::vector<int32_t> tokens =
        base ? base->tokens() : tok->encode(text, /*add_bos=*/true, /*parse_special=*/false);
    const int32_t bos = tok->add_bos() ? tok->bos() : -1;
    const int64_t n_ctx = eng.params().n_ctx;
    const int64_t n_vocab = eng.hparams().n_vocab;
    if (base && static_cast<int64_t>(base->header().n_vocab) != n_vocab)
        throw usage_error(fmt::format("the base file has a vocabulary of {} tokens, this model {}: not the same "
                                      "tokenizer", base->header().n_vocab, n_vocab));
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab) throw usage_error("the base file's tokens are outside this model's vocabulary");
    std::fprintf(stderr, "perplexity: %zu tokens, chunks of %lld (scoring the second half), batch %lld, %d threads\n",
                 tokens.size(), static_cast<long long>(n_ctx), static_cast<long long>(eng.params().n_batch),
                 eng.params().n_threads);
    std::optional<quality::kld_base_writer> writer;
    if (!o.kld_base.empty()) writer.emplace(o.kld_base, n_ctx, n_vocab, tokens);
    quality::kld_accumulator acc;
    const int64_t first = n_ctx / 2;
    auto on_logits = [&](int c, std::span<const float> rows) {
        if (writer) writer->add_chunk(rows);
        if (!base) return;
        const std::vector<float> b = base->next_chunk();
        const size_t nv = static_cast<size_t>(n_vocab);
        for (int64_t k = 0; k + first + 1 < n_ctx; ++k) {
            const size_t off = static_cast<size_t>(k) * nv;
            acc.add(std::span<const float>(b).subspan(off, nv), rows.subspan(off, nv),
                    tokens[static_cast<size_t>(c * n_ctx + first + k + 1)]);
        }
    };
    auto on_chunk = [&](int i, double ppl) {
        if (o.json) return;
        std::printf("[%d]%.4f,", i + 1, ppl);
        std::fflush(stdout);
    };
    const int n_chunks = base ? static_cast<int>(base->header().n_chunks) : o.n_chunks;
    const quality::perplexity_result r = quality::perplexity(eng, tokens, bos, n_chunks, on_chunk, on_logits);
    if (writer) writer->finish();
    const quality::kld_stats k = acc.stats();
    if (o.json) {
        nlohmann::json j = {{"model", o.session.model}, {"text_file", o.text_file}, {"n_ctx", n_ctx},
                            {"n_batch", eng.params().n_batch}, {"n_tokens", r.n_tokens}, {"n_chunks", r.n_chunks},
                            {"n_scored", r.n_scored}, {"ppl", r.ppl}, {"ppl_stderr", r.ppl_stderr},
                            {"chunk_ppl", r.chunk_ppl}, {"eval_ms", r.eval_ms}};
        if (base)
            j["kl_divergence"] = {{"base_file", o.kld},       {"n", k.n},
                                  {"ppl_base", k.ppl_base},   {"kld_mean", k.kld_mean},
                                  {"kld_stderr", k.kld_stderr}, {"kld_median", k.kld_median},
                                  {"kld_p99", k.kld_p99},     {"kld_max", k.kld_max},
                                  {"top1_agree", k.top1_agree}, {"top1_stderr", k.top1_stderr},
                                  {"dp_mean", k.dp_mean},     {"dp_rms", k.dp_rms}};
        std::puts(j.dump(2).c_str());
        return;
    }
    std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    if (writer) std::printf("saved the base log-probabilities of %d chunks to %s\n", r.n_chunks, o.kld_base.c_str());
    if (base) {
        std::printf("\n====== KL divergence against %s (%lld positions) ======\n", o.kld.c_str(),
                    static_cast<long long>(k.n));
        std::printf("PPL(base)     : %10.4f\nPPL(this)     : %10.4f\nln(PPL ratio) : %10.6f\n", k.ppl_base, k.ppl,
                    std::log(k.ppl / k.ppl_base));
        std::printf("Mean   KLD    : %10.6f +/- %.6f\nMedian KLD    : %10.6f\n99.0%%  KLD    : %10.6f\nMaximum KLD   : %10.6f\n",
                    k.kld_mean, k.kld_stderr, k.kld_median, k.kld_p99, k.kld_max);
        std::printf("Same top token: %9.3f +/- %.3f %%\nMean   dp     : %10.6f %%\nRMS    dp     : %10.6f %%\n",
                    100 * k.top1_agree, 100 * k.top1_stderr, 100 * k.dp_mean, 100 * k.dp_rms);
    }
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
        "--kl-divergence-base FILE saves the base model's distributions; --kl-divergence FILE with another\n"
        "model (e.g. a quantization of the base) reports how far its distributions moved.\n"
        "Examples:\n"
        "  edgellm perplexity -m model.gguf -f wiki.test.raw -c 512\n"
        "  edgellm perplexity -m stories260K.gguf -f /usr/share/common-licenses/GPL-3 -c 128 -b 128\n"
        "  edgellm perplexity -m model-f16.gguf -f text.txt --kl-divergence-base base.kld\n"
        "  edgellm perplexity -m model-q4_k_m.gguf --kl-divergence base.kld\n");
    cmd->add_option("-m,--model", opts->session.model, "GGUF model file")->required();
    cmd->add_option("-f,--file", opts->text_file, "text file to score (not needed with --kl-divergence)");
    cmd->add_option("--kl-divergence-base", opts->kld_base,
                    "save this model's log-probabilities of the scored positions to FILE (the base of a comparison)");
    cmd->add_option("--kl-divergence", opts->kld,
                    "compare against a base FILE: mean KL divergence, same top token, change in p (same text and -c)");
    cmd->add_option("--chunks", opts->n_chunks, "score at most this many chunks (default: all)");
    cmd->add_flag("--json", opts->json, "print the result as JSON");
    opts->session.add_to(cmd, "tokens per chunk (default 512)");
    cmd->callback([opts] { run_perplexity(*opts); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("perplexity", 45, setup);

}  // namespace edgellm::cli
