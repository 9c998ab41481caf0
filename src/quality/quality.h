// `edgellm quality`: the seed's quantization table measured on the user's own model. Each type
// is quantized from the base model (cached), then measured in a child process of edgellm itself
// (so each model's peak RSS is its own): perplexity and KL divergence against the base model's
// next-token distributions (`edgellm perplexity`), prefill and decode speed (`edgellm bench`
// micro tests, llama-bench style).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace edgellm::quality {

struct quality_options {
    std::string base;               // F32 / F16 / BF16 GGUF (a quantized one with allow_requantize)
    bool allow_requantize = false;  // accept a quantized base: its types are re-quantized and the
                                    // figures measure the damage relative to that base, not to F16
    std::vector<std::string> types; // mixes (quant/mix.h)
    std::string text_file;          // perplexity text
    int n_ctx = 512, n_batch = 512;
    int n_chunks = -1;              // -1: every whole chunk
    int n_threads = 0;              // 0: every core
    int n_prompt = 128, n_gen = 32, runs = 2;  // speed tests (ppN, tgM)
    std::string out_dir = "out/quality";       // quantized files (reused when up to date) and reports
    std::string exe;                // the edgellm binary for the child runs (default: this one)
    std::function<void(const std::string& line)> log;  // progress lines
};

struct quality_row {
    std::string type;       // "base (F16)" for the base model, else the mix
    std::string path;
    uint64_t file_bytes = 0;
    double bits_per_weight = 0;
    double ppl = 0, ppl_stderr = 0, dppl_pct = 0;  // dppl_pct: (ppl / base ppl - 1) * 100
    double kld_mean = 0, kld_p99 = 0, top1_pct = 100;
    double prefill_tps = 0, decode_tps = 0;
    uint64_t peak_rss_bytes = 0;    // of the speed run
    double quantize_s = 0;          // 0 when the cached file was used
    bool cached = false;
    bool is_base = false;
};

struct quality_report {
    quality_options opts;
    std::string base_type;  // the base model's main weight type
    bool base_quantized = false;  // allow_requantize with a quantized base: the report says so
    uint64_t n_params = 0;
    int64_t n_scored = 0;   // tokens scored per model
    std::string created_utc;
    std::vector<quality_row> rows;  // base first
};

// Runs everything; throws usage_error for bad options (unknown type, missing text, a text shorter
// than 2 x n_ctx tokens, a quantized base without allow_requantize) before any quantization starts.
quality_report measure_quality(const quality_options& opts);

std::string render_quality_text(const quality_report& r);
std::string render_quality_markdown(const quality_report& r);
std::string render_quality_json(const quality_report& r);
std::string render_quality_html(const quality_report& r);

}  // namespace edgellm::quality
