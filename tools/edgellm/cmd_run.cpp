// `edgellm run`: generate text from a GGUF model with the native engine, streaming to stdout
// and printing a summary (load time, prefill / decode speed, KV cache size, peak RSS) to stderr.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "command.h"
#include "core/error.h"
#include "core/units.h"
#include "engine/engine.h"
#include "engine/text.h"
#include "run_backend.h"

namespace edgellm::cli {
namespace {

struct run_options {
    std::string model;
    std::string prompt;
    bool prompt_given = false;
    std::string prompt_ids;
    int n_predict = 128;
    int n_threads = -1;  // -1: not given (all hardware threads)
    int64_t n_ctx = 0;
    int64_t n_batch = 512;
    float temp = 0.8f;
    int top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.0f;
    int repeat_last_n = 64;
    float frequency_penalty = 0.0f;
    float presence_penalty = 0.0f;
    int64_t seed = -1;
    bool json = false;
    bool ignore_eos = false;
    std::string kv_type = "f16";
    bool no_repack = false;
    std::string llama_server;  // llama-server binary (llama_cpp backend)
    bool chat = false;         // other backends: send as a chat conversation
    std::string system;        // with chat: system message
    std::string backend;  // empty or "native": this engine; otherwise any backend of the registry
    std::string url;
};

std::vector<int32_t> parse_ids(const std::string& text) {
    std::vector<int32_t> ids;
    std::string s = text;
    for (char& c : s)
        if (c == ',' || c == '[' || c == ']') c = ' ';
    std::istringstream in(s);
    std::string word;
    while (in >> word) {
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(word, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != word.size() || v < 0 || v > INT32_MAX)
            throw usage_error(fmt::format("--prompt-ids: '{}' is not a token id", word));
        ids.push_back(static_cast<int32_t>(v));
    }
    if (ids.empty()) throw usage_error("--prompt-ids is empty");
    return ids;
}

void check_options(const run_options& o) {
    if (o.n_predict <= 0) throw usage_error(fmt::format("-n must be a positive number of tokens, got {}", o.n_predict));
    if (o.n_threads == 0 || o.n_threads < -1) throw usage_error(fmt::format("-t must be at least 1, got {}", o.n_threads));
    if (o.n_ctx < 0) throw usage_error(fmt::format("-c must be positive, got {}", o.n_ctx));
    if (o.n_batch <= 0) throw usage_error(fmt::format("-b must be positive, got {}", o.n_batch));
    if (o.top_k < 0) throw usage_error(fmt::format("--top-k must be >= 0, got {}", o.top_k));
}

void run_other_backend(const run_options& o) {
    if (!o.prompt_ids.empty()) throw usage_error("--prompt-ids works only with the native backend");
    backend_run_options b;
    b.backend = o.backend;
    b.model = o.model;
    b.url = o.url;
    b.prompt = o.prompt;
    b.n_predict = o.n_predict;
    b.temperature = o.temp;
    b.top_k = o.top_k;
    b.top_p = o.top_p;
    b.min_p = o.min_p;
    b.repeat_penalty = o.repeat_penalty;
    if (o.seed >= 0) b.seed = static_cast<uint64_t>(o.seed);
    b.n_threads = o.n_threads > 0 ? o.n_threads : 0;
    b.n_ctx = static_cast<int>(o.n_ctx);
    b.n_batch = static_cast<int>(o.n_batch);
    b.json = o.json;
    b.chat = o.chat;
    b.system = o.system;
    if (!o.llama_server.empty()) b.extra["binary"] = o.llama_server;
    run_with_backend(b);
}

void run(const run_options& o) {
    if (o.model.empty()) throw usage_error("no model given: use -m MODEL.gguf (or --model-name NAME for a server backend)");
    check_options(o);
    if (!o.backend.empty() && o.backend != "native") {
        run_other_backend(o);
        return;
    }
    engine::engine_params ep;
    ep.model_path = o.model;
    ep.n_ctx = o.n_ctx;
    ep.n_batch = o.n_batch;
    ep.n_threads = o.n_threads > 0 ? o.n_threads : 0;
    ep.repack = !o.no_repack;
    if (o.kv_type == "f16")
        ep.kv_type = ggml_type::f16;
    else if (o.kv_type == "f32")
        ep.kv_type = ggml_type::f32;
    else
        throw usage_error(fmt::format("--kv-type must be f16 or f32, got '{}'", o.kv_type));

    engine::generation_params gp;
    gp.n_predict = o.n_predict;
    gp.ignore_eos = o.ignore_eos;
    gp.sampling.temperature = o.temp;
    gp.sampling.top_k = o.top_k;
    gp.sampling.top_p = o.top_p;
    gp.sampling.min_p = o.min_p;
    gp.sampling.repeat_penalty = o.repeat_penalty;
    gp.sampling.penalty_last_n = o.repeat_last_n;
    gp.sampling.frequency_penalty = o.frequency_penalty;
    gp.sampling.presence_penalty = o.presence_penalty;
    gp.sampling.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed)
                                   : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    sampling::validate(gp.sampling);

    engine::engine eng(ep);
    engine::text_codec codec(eng.get_model());
    std::vector<int32_t> prompt;
    if (!o.prompt_ids.empty()) {
        if (o.prompt_given) throw usage_error("give either -p or --prompt-ids, not both");
        prompt = parse_ids(o.prompt_ids);
    } else {
        prompt = codec.encode_prompt(o.prompt);
    }

    if (const tokenizer* tok = codec.get_tokenizer()) {
        for (int32_t id = 0; id < tok->n_vocab(); ++id)
            if (tok->is_eog(id)) gp.extra_eog_ids.push_back(id);
    }

    std::vector<int32_t> generated;
    std::string text;
    auto on_token = [&](int32_t tok) {
        generated.push_back(tok);
        const std::string piece = codec.push(tok);
        if (o.json) {
            text += piece;
        } else {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
        }
        return true;
    };
    const engine::generation_stats st = eng.generate(prompt, gp, on_token);
    const std::string tail = codec.flush();
    if (o.json)
        text += tail;
    else
        std::fwrite(tail.data(), 1, tail.size(), stdout);
    const auto& hp = eng.hparams();

    if (o.json) {
        nlohmann::json j;
        j["model"] = o.model;
        j["arch"] = hp.arch;
        j["n_threads"] = eng.params().n_threads;
        j["n_ctx"] = eng.params().n_ctx;
        j["n_batch"] = eng.params().n_batch;
        j["kv_type"] = std::string(type_name(eng.kv().type()));
        j["seed"] = gp.sampling.seed;
        j["load_ms"] = st.load_ms;
        j["n_prompt"] = st.n_prompt;
        j["prefill_ms"] = st.prefill_ms;
        j["prefill_tokens_per_s"] = st.prefill_tokens_per_s;
        j["n_gen"] = st.n_gen;
        j["n_decode"] = st.n_decode;
        j["decode_ms"] = st.decode_ms;
        j["decode_tokens_per_s"] = st.decode_tokens_per_s;
        j["sample_ms"] = st.sample_ms;
        j["ttft_ms"] = st.ttft_ms;
        j["kv_bytes"] = st.kv_bytes;
        j["model_bytes"] = st.model_bytes;
        j["weight_bytes"] = eng.get_model().weights().n_matrix_bytes;
        j["packed_bytes"] = eng.get_model().packed_bytes();
        j["peak_rss_bytes"] = st.peak_rss_bytes;
        j["stop_reason"] = st.stop_reason;
        j["tokens"] = generated;
        j["text"] = text;
        // Generated text may end inside a multi-byte character (byte tokens): replace, never throw.
        std::puts(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        return;
    }
    std::fputs("\n", stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "%s",
                 fmt::format("\nmodel: {} ({}, {} layers, {} threads)\n"
                             "load: {:.1f} ms\n"
                             "prompt: {} tokens, {:.1f} ms, {:.2f} tokens/s\n"
                             "generated: {} tokens ({} decode steps, {:.1f} ms, {:.2f} tokens/s), stop: {}\n"
                             "kv cache: {} ({}, {} positions)\n"
                             "peak rss: {} (model file {})\n",
                             o.model, hp.arch, hp.n_layer, eng.params().n_threads, st.load_ms, st.n_prompt,
                             st.prefill_ms, st.prefill_tokens_per_s, st.n_gen, st.n_decode, st.decode_ms,
                             st.decode_tokens_per_s, st.stop_reason, format_bytes(st.kv_bytes),
                             type_name(eng.kv().type()), eng.params().n_ctx, format_bytes(st.peak_rss_bytes),
                             format_bytes(st.model_bytes))
                     .c_str());
}

void setup(CLI::App& app) {
    auto opts = std::make_shared<run_options>();
    CLI::App* cmd = app.add_subcommand("run", "Generate text from a GGUF model with the native engine");
    cmd->footer(
        "Examples:\n"
        "  edgellm run -m stories260K.gguf -p \"Once upon a time\" -n 64\n"
        "  edgellm run -m model.gguf -p \"\" -n 256 --temp 0        (greedy, from BOS)\n"
        "  edgellm run -m model.gguf --prompt-ids \"1 415 2936\" --json\n");
    auto* model_opt = cmd->add_option("-m,--model,--model-path", opts->model, "GGUF model file");
    auto* name_opt = cmd->add_option("--model-name", opts->model,
                                     "model name for server backends (Ollama tag, served model)");
    model_opt->excludes(name_opt);
    cmd->add_option("-p,--prompt", opts->prompt, "prompt text (\"\" starts from BOS alone)")
        ->each([o = opts.get()](const std::string&) { o->prompt_given = true; });
    cmd->add_option("--prompt-ids", opts->prompt_ids, "prompt as token ids (\"1 2 3\"), used verbatim");
    cmd->add_option("-n,--n-predict", opts->n_predict, "tokens to generate (default 128)");
    cmd->add_option("-t,--threads", opts->n_threads, "threads (default: all hardware threads)");
    cmd->add_option("-c,--ctx-size", opts->n_ctx, "context size (default: model's, at most 4096)");
    cmd->add_option("-b,--batch-size", opts->n_batch, "prompt tokens per prefill step (default 512)");
    cmd->add_option("--temp", opts->temp, "temperature; 0 = greedy (default 0.8)");
    cmd->add_option("--top-k", opts->top_k, "top-k, 0 = off (default 40)");
    cmd->add_option("--top-p", opts->top_p, "top-p, 1 = off (default 0.95)");
    cmd->add_option("--min-p", opts->min_p, "min-p, 0 = off (default 0.05)");
    cmd->add_option("--repeat-penalty", opts->repeat_penalty, "repetition penalty, 1 = off (default 1.0)");
    cmd->add_option("--repeat-last-n", opts->repeat_last_n, "tokens the penalties look back on (default 64)");
    cmd->add_option("--frequency-penalty", opts->frequency_penalty, "frequency penalty (default 0)");
    cmd->add_option("--presence-penalty", opts->presence_penalty, "presence penalty (default 0)");
    cmd->add_option("-s,--seed", opts->seed, "sampling seed (default: random)");
    cmd->add_option("--kv-type", opts->kv_type, "KV cache type: f16 (default) or f32");
    cmd->add_flag("--no-repack", opts->no_repack,
                  "use the weights as stored in the file instead of the faster packed copy made at load");
    cmd->add_option("--backend", opts->backend, "backend to run on (default: native, this engine; see `edgellm list`)");
    cmd->add_option("--url", opts->url, "base URL of an HTTP backend");
    cmd->add_option("--llama-server", opts->llama_server, "llama-server binary for --backend llama_cpp");
    cmd->add_flag("--chat", opts->chat, "send the prompt as a chat message (server backends apply their template)");
    cmd->add_option("--system", opts->system, "system message with --chat");
    cmd->add_flag("--ignore-eos", opts->ignore_eos, "keep generating past end-of-generation tokens");
    cmd->add_flag("--json", opts->json, "print the result and summary as one JSON object on stdout");
    cmd->callback([opts] { run(*opts); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("run", 30, setup);

}  // namespace edgellm::cli
