// `edgellm quality -m BASE.gguf --types ... -f TEXT`: the seed's quantization table, measured.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "command.h"
#include "core/error.h"
#include "quality/quality.h"

namespace edgellm::cli {
namespace {

struct quality_flags {
    quality::quality_options o;
    std::string types = "q8_0,q6_k,q4_k_m,q4_0,q3_k_m,q2_k";
    std::string json, md, html;
    bool quiet = false;
};

void write_file(const std::string& path, const std::string& text) {
    if (path.empty()) return;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) throw error("cannot write " + path);
}

void run_quality(quality_flags& f) {
    std::stringstream ss(f.types);
    for (std::string t; std::getline(ss, t, ',');)
        if (!t.empty()) f.o.types.push_back(t);
    if (!f.quiet) f.o.log = [](const std::string& s) { std::fprintf(stderr, "quality: %s\n", s.c_str()); };
    const auto r = quality::measure_quality(f.o);
    const std::string dir = f.o.out_dir;
    const std::string md = f.md.empty() ? dir + "/quality.md" : f.md;
    const std::string js = f.json.empty() ? dir + "/quality.json" : f.json;
    const std::string html = f.html.empty() ? dir + "/quality.html" : f.html;
    write_file(md, quality::render_quality_markdown(r));
    write_file(js, quality::render_quality_json(r));
    write_file(html, quality::render_quality_html(r));
    std::fputs(quality::render_quality_text(r).c_str(), stdout);
    if (!f.quiet) std::fprintf(stderr, "quality: wrote %s, %s and %s\n", md.c_str(), js.c_str(), html.c_str());
}

void setup(CLI::App& app) {
    auto f = std::make_shared<quality_flags>();
    auto* cmd = app.add_subcommand("quality", "Measure size, perplexity, KL divergence and speed of each quantization");
    cmd->footer(
        "Quantizes BASE to each type (files kept in --out-dir and reused while newer than BASE), then\n"
        "measures every model in its own edgellm child process: perplexity and KL divergence against\n"
        "BASE's next-token distributions (edgellm perplexity), prefill/decode speed (edgellm bench -p/-n)\n"
        "and the peak RSS of that run. Writes quality.md, quality.json and quality.html (two scatter\n"
        "charts) to --out-dir and prints the table.\n"
        "Example:\n"
        "  edgellm quality -m model-f16.gguf -f /usr/share/common-licenses/GPL-3 -c 256 --chunks 8");
    cmd->add_option("-m,--model", f->o.base, "Base model (F32, F16 or BF16 GGUF)")->required();
    cmd->add_flag("--allow-requantize", f->o.allow_requantize,
                  "Accept a quantized base (most users only have a Q4 file): each type is re-quantized from it and "
                  "measured against it; the report carries a warning");
    cmd->add_option("--types", f->types, "Comma-separated types or mixes")->capture_default_str();
    cmd->add_option("-f,--file", f->o.text_file, "Text for perplexity (at least 2 x -c tokens)")->required();
    cmd->add_option("-c,--ctx-size", f->o.n_ctx, "Perplexity chunk size in tokens")->capture_default_str();
    cmd->add_option("-b,--batch-size", f->o.n_batch, "Tokens per forward pass")->capture_default_str();
    cmd->add_option("--chunks", f->o.n_chunks, "Score at most this many chunks (default: all)");
    cmd->add_option("-t,--threads", f->o.n_threads, "Threads (default: every core)");
    cmd->add_option("-p,--n-prompt", f->o.n_prompt, "Prefill test size (ppN)")->capture_default_str();
    cmd->add_option("-n,--n-gen", f->o.n_gen, "Decode test size (tgN)")->capture_default_str();
    cmd->add_option("-r,--runs", f->o.runs, "Runs of each speed test")->capture_default_str();
    cmd->add_option("--out-dir", f->o.out_dir, "Quantized files and reports")->capture_default_str();
    cmd->add_option("--json", f->json, "JSON report path (default OUT_DIR/quality.json)");
    cmd->add_option("--md", f->md, "Markdown report path (default OUT_DIR/quality.md)");
    cmd->add_option("--html", f->html, "HTML report path (default OUT_DIR/quality.html)");
    cmd->add_flag("-q,--quiet", f->quiet, "No progress lines");
    cmd->callback([f] { run_quality(*f); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("quality", 48, setup);

}  // namespace edgellm::cli
