// `edgellm embed`: embeddings of texts with an encoder (bert) or decoder GGUF model, many inputs
// batched into each forward pass; printed as text or JSON.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "core/error.h"
#include "engine/embed.h"

namespace edgellm::cli {
namespace {

struct embed_flags {
    std::string model;
    std::vector<std::string> prompts;
    std::string file;
    std::string pooling;
    bool normalize = true;
    bool json = false;
    int n_threads = 0;
    int64_t n_ctx = 0;
    int64_t n_batch = 2048;
};

void run_embed(const embed_flags& fl) {
    std::vector<std::string> texts = fl.prompts;
    if (!fl.file.empty()) {
        std::ifstream in(fl.file);
        if (!in) throw usage_error("cannot open input file '" + fl.file + "'");
        for (std::string line; std::getline(in, line);) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (!line.empty()) texts.push_back(line);
        }
    }
    if (texts.empty()) throw usage_error("nothing to embed: give -p TEXT (one or more) or -f FILE");
    engine::embed_options o;
    o.normalize = fl.normalize;
    if (!fl.pooling.empty()) {
        o.pool = engine::parse_pooling(fl.pooling);
        if (!o.pool)
            throw usage_error(
                fmt::format("--pooling '{}' is not one of mean, cls, last, none", fl.pooling));
    }
    const int nt = fl.n_threads > 0
                       ? fl.n_threads
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    auto lm = engine::loaded_model::load(fl.model, /*repack=*/true, nt);
    engine::embedder emb(lm, nt, fl.n_ctx, fl.n_batch);
    const engine::embed_result r = emb.embed(texts, o);
    if (fl.json) {
        nlohmann::json j;
        j["model"] = fl.model;
        j["pooling"] = engine::pooling_name(r.pool);
        j["normalized"] = fl.normalize;
        j["n_embd"] = r.n_embd;
        j["data"] = nlohmann::json::array();
        for (size_t i = 0; i < r.vectors.size(); ++i)
            j["data"].push_back(
                {{"index", i}, {"n_tokens", r.n_tokens[i]}, {"embedding", r.vectors[i]}});
        const std::string s = j.dump() + "\n";
        std::fwrite(s.data(), 1, s.size(), stdout);
        return;
    }
    std::string out;
    for (size_t i = 0; i < r.vectors.size(); ++i) {
        out += fmt::format("embedding {} ({} tokens, {} pooling):", i, r.n_tokens[i],
                           engine::pooling_name(r.pool));
        for (float v : r.vectors[i]) out += fmt::format(" {:.6f}", v);
        out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    int64_t n_tok = 0;
    for (int64_t n : r.n_tokens) n_tok += n;
    std::fprintf(stderr, "%zu inputs, %lld tokens in %.1f ms (%lld forward passes)\n",
                 r.vectors.size(), static_cast<long long>(n_tok), r.ms,
                 static_cast<long long>(r.n_batches));
}

void setup_embed(CLI::App& app) {
    auto fl = std::make_shared<embed_flags>();
    auto* cmd = app.add_subcommand("embed", "Embeddings of texts (encoder or decoder GGUF models)");
    cmd->footer(
        "Examples:\n"
        "  edgellm embed -m minilm.gguf -p 'A man is eating food.' -p 'Someone eats.'\n"
        "  edgellm embed -m minilm.gguf -f sentences.txt --json        # one input per line\n"
        "  edgellm embed -m SmolLM2.gguf -p 'hello' --pooling mean --no-normalize\n"
        "Pooling defaults to the model's (bert.pooling_type; mean for encoders without it, last\n"
        "token for decoders). Vectors are L2-normalised unless --no-normalize.");
    cmd->add_option("-m,--model", fl->model, "GGUF model")->required();
    cmd->add_option("-p,--prompt", fl->prompts, "Text to embed (repeat for several)");
    cmd->add_option("-f,--file", fl->file, "Read inputs from a file, one per line");
    cmd->add_option("--pooling", fl->pooling, "mean, cls, last or none (every token's vector)");
    cmd->add_flag("--normalize,!--no-normalize", fl->normalize,
                  "L2-normalise the vectors (default on)");
    cmd->add_flag("--json", fl->json,
                  "Print JSON: {n_embd, pooling, data: [{index, n_tokens, embedding}]}");
    cmd->add_option("-t,--threads", fl->n_threads, "Threads (default: all)");
    cmd->add_option("-c,--ctx-size", fl->n_ctx,
                    "Longest input in tokens (default: the model's context); longer "
                    "inputs are truncated");
    cmd->add_option("-b,--batch-size", fl->n_batch,
                    "Tokens per forward pass (default 2048; encoders: at least the context; decoders: at "
                    "most 512)");
    cmd->callback([fl] { run_embed(*fl); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("embed", 83, setup_embed);

}  // namespace edgellm::cli
