// `edgellm pull REF`, `edgellm models`, `edgellm rm NAME`: the model store (src/store/).
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/error.h"
#include "core/units.h"
#include "gguf/gguf.h"
#include "gguf/gguf_summary.h"
#include "store/pull.h"
#include "store/store.h"

namespace edgellm::cli {
namespace {

struct store_options {
    std::string ref;
    std::string models_dir;
    store::pull_options pull;
    bool json = false;
};

// A progress line on a TTY (rewritten in place, at most 10 times a second); nothing when piped
// except the final line.
class progress_line {
public:
    progress_line() : tty_(::isatty(STDERR_FILENO) != 0) {}
    void operator()(const store::pull_progress& p) {
        using clock = std::chrono::steady_clock;
        const auto now = clock::now();
        if (p.status != last_status_) {
            if (tty_ && !last_status_.empty()) std::fputs("\n", stderr);
            if (!tty_) std::fprintf(stderr, "%s\n", p.status.c_str());
            last_status_ = p.status;
            start_ = now;
            shown_ = {};
        }
        if (!tty_ || (p.total == 0 && p.completed == 0)) {
            if (tty_) std::fprintf(stderr, "\r%s\x1b[K", p.status.c_str());
            return;
        }
        if (now - shown_ < std::chrono::milliseconds(100) && p.completed != p.total) return;
        shown_ = now;
        const double s = std::chrono::duration<double>(now - start_).count();
        const std::string rate = s > 0.2 ? format_bytes(static_cast<uint64_t>(p.completed / s)) + "/s" : "";
        if (p.total)
            std::fprintf(stderr, "\r%s %3d%% %s / %s %s\x1b[K", p.status.c_str(),
                         static_cast<int>(100.0 * p.completed / p.total), format_bytes(p.completed).c_str(),
                         format_bytes(p.total).c_str(), rate.c_str());
        else
            std::fprintf(stderr, "\r%s %s %s\x1b[K", p.status.c_str(), format_bytes(p.completed).c_str(), rate.c_str());
        std::fflush(stderr);
    }
    ~progress_line() {
        if (tty_ && !last_status_.empty()) std::fputs("\n", stderr);
    }

private:
    bool tty_;
    std::string last_status_;
    std::chrono::steady_clock::time_point start_{}, shown_{};
};

void do_pull(store_options& o) {
    o.pull.store_dir = o.models_dir;
    store::entry e;
    {
        progress_line line;
        e = store::pull(o.ref, o.pull, [&line](const store::pull_progress& p) { line(p); });
    }
    const store::model_store st(o.models_dir);
    if (o.json) {
        fmt::print("{}\n", nlohmann::json{{"name", e.name}, {"size", e.size}, {"digest", e.blob},
                                          {"path", st.blob_path(e.blob).string()}, {"source", e.source}}
                               .dump(2));
        return;
    }
    fmt::print("pulled {} ({}) -> {}\nrun it with: edgellm run -m {} -p \"Hello\"\n", e.name, format_bytes(e.size),
               st.blob_path(e.blob).string(), e.name);
}

std::string quant_of(const std::string& path) {
    try {
        return gguf::quantization_level(gguf::file::open(path));
    } catch (const std::exception&) {
        return "?";
    }
}

void do_models(const store_options& o) {
    const store::model_store st(o.models_dir);
    const auto models = st.list();
    if (o.json) {
        auto arr = nlohmann::json::array();
        for (const auto& e : models)
            arr.push_back({{"name", e.name}, {"size", e.size}, {"digest", e.blob}, {"quantization", quant_of(st.blob_path(e.blob))},
                           {"path", st.blob_path(e.blob).string()}, {"source", e.source}, {"pulled_at", e.pulled_at}});
        fmt::print("{}\n", arr.dump(2));
        return;
    }
    if (models.empty()) {
        fmt::print("no models in {} (edgellm pull REF adds one)\n", st.dir().string());
        return;
    }
    size_t w = 4;
    for (const auto& e : models) w = std::max(w, e.name.size());
    fmt::print("{:<{}}  {:>10}  {:<8}  {}\n", "name", w, "size", "type", "path");
    for (const auto& e : models)
        fmt::print("{:<{}}  {:>10}  {:<8}  {}\n", e.name, w, format_bytes(e.size), quant_of(st.blob_path(e.blob)),
                   st.blob_path(e.blob).string());
}

void do_rm(const store_options& o) {
    store::model_store st(o.models_dir);
    if (!st.remove(o.ref))
        throw usage_error(fmt::format("no stored model named '{}' in {} (`edgellm models` lists them)", o.ref,
                                      st.dir().string()));
    fmt::print("removed {}\n", o.ref);
}

void add_dir(CLI::App* cmd, store_options& o) {
    cmd->add_option("--models-dir", o.models_dir, "the model store (default $EDGELLM_MODELS, else ~/.cache/edgellm/models)");
}

void setup_pull(CLI::App& app) {
    auto o = std::make_shared<store_options>();
    auto* cmd = app.add_subcommand("pull", "Download a model into the model store (Hugging Face, Ollama registry, URL)");
    cmd->add_option("ref", o->ref, "what to pull: ORG/REPO[:QUANT], hf://ORG/REPO/FILE.gguf, NAME[:TAG] (Ollama), "
                                   "ollama://HOST/NS/NAME:TAG, or an http(s) URL")
        ->required();
    cmd->add_option("--name", o->pull.name, "store it under this name instead of the derived one");
    cmd->add_option("--sha256", o->pull.sha256, "expected SHA-256 of a plain URL's file (registries give their own)");
    cmd->add_flag("--insecure", o->pull.insecure, "talk to an Ollama registry over plain http (a local mirror)");
    cmd->add_flag("--json", o->json, "print the stored entry as JSON");
    add_dir(cmd, *o);
    cmd->footer(
        "Examples:\n"
        "  edgellm pull bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M\n"
        "  edgellm pull hf://ggml-org/models/tinyllamas/stories260K.gguf\n"
        "  edgellm pull llama3.2:1b                      (registry.ollama.ai/library)\n"
        "  edgellm pull https://example.org/m.gguf --sha256 HEX --name mymodel\n"
        "Then: edgellm run -m NAME ... (every -m takes a store name as well as a path).\n"
        "A cut download resumes on the next pull of the same reference. HF_TOKEN and HF_ENDPOINT are honoured.");
    cmd->callback([o] { do_pull(*o); });
}

void setup_models(CLI::App& app) {
    auto o = std::make_shared<store_options>();
    auto* cmd = app.add_subcommand("models", "List the models in the model store");
    cmd->add_flag("--json", o->json, "machine-readable output");
    add_dir(cmd, *o);
    cmd->callback([o] { do_models(*o); });
}

void setup_rm(CLI::App& app) {
    auto o = std::make_shared<store_options>();
    auto* cmd = app.add_subcommand("rm", "Remove a model from the model store");
    cmd->add_option("name", o->ref, "the stored model's name (see `edgellm models`)")->required();
    add_dir(cmd, *o);
    cmd->callback([o] { do_rm(*o); });
}

}  // namespace
EDGELLM_REGISTER_COMMAND("pull", 12, setup_pull);
EDGELLM_REGISTER_COMMAND("models", 13, setup_models);
EDGELLM_REGISTER_COMMAND("rm", 14, setup_rm);
}  // namespace edgellm::cli
