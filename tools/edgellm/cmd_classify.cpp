// `edgellm classify`: a sequence-classification model's label and probabilities for each text
// (BERT / DistilBERT ...ForSequenceClassification converted by `edgellm convert`).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
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

struct classify_flags {
    std::string model;
    std::vector<std::string> prompts;
    bool json = false;
    int n_threads = 0;
};

void run_classify(const classify_flags& fl) {
    if (fl.prompts.empty()) throw usage_error("nothing to classify: give -p TEXT (one or more)");
    const int nt = fl.n_threads > 0
                       ? fl.n_threads
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    auto lm = engine::loaded_model::load(fl.model, /*repack=*/true, nt);
    engine::embedder emb(lm, nt);
    const engine::classify_result r = emb.classify(fl.prompts);
    nlohmann::json j = nlohmann::json::array();
    std::string out;
    for (size_t i = 0; i < r.probs.size(); ++i) {
        const auto& p = r.probs[i];
        const size_t best = static_cast<size_t>(std::max_element(p.begin(), p.end()) - p.begin());
        nlohmann::json probs = nlohmann::json::object();
        out += fmt::format("{} ({:.4f})", r.labels[best], p[best]);
        for (size_t k = 0; k < p.size(); ++k) {
            probs[r.labels[k]] = p[k];
            out += fmt::format("{}{}={:.4f}", k ? " " : "  ", r.labels[k], p[k]);
        }
        out += fmt::format("  {}\n", fl.prompts[i]);
        j.push_back({{"index", i},
                     {"text", fl.prompts[i]},
                     {"label", r.labels[best]},
                     {"probs", probs},
                     {"logits", r.logits[i]}});
    }
    if (fl.json) out = j.dump() + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

void setup_classify(CLI::App& app) {
    auto fl = std::make_shared<classify_flags>();
    auto* cmd = app.add_subcommand(
        "classify", "Label texts with a sequence-classification model (e.g. sentiment)");
    cmd->footer(
        "Examples:\n"
        "  edgellm convert ./distilbert-sst2 sst2.gguf && edgellm classify -m sst2.gguf -p 'I "
        "loved it'\n"
        "  edgellm classify -m sst2.gguf -p 'great' -p 'awful' --json\n"
        "Prints the most probable label, then every label's probability (softmax of the head).");
    cmd->add_option("-m,--model", fl->model, "GGUF model with a classification head")->required();
    cmd->add_option("-p,--prompt", fl->prompts, "Text to classify (repeat for several)");
    cmd->add_flag("--json", fl->json,
                  "Print JSON: [{index, text, label, probs: {label: p}, logits}]");
    cmd->add_option("-t,--threads", fl->n_threads, "Threads (default: all)");
    cmd->callback([fl] { run_classify(*fl); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("classify", 84, setup_classify);

}  // namespace edgellm::cli
