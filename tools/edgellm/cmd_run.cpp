// `edgellm run`: generate text from a GGUF model with the native engine, streaming to stdout
// and printing a summary (load time, prefill / decode speed, KV cache size, peak RSS) to stderr.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "command.h"
#include "common_flags.h"
#include "core/error.h"
#include "core/units.h"
#include "engine/engine.h"
#include "engine/speculative.h"
#include "engine/text.h"
#include "run_backend.h"

namespace edgellm::cli {
namespace {

struct run_options {
    session_flags session;  // session.model: -m
    sampling_flags sampling;
    grammar_flags grammar;
    std::string prompt;
    bool prompt_given = false;
    std::string prompt_ids;
    int n_predict = engine::generation_params{}.n_predict;
    bool json = false;
    bool ignore_eos = false;
    std::string llama_server;  // llama-server binary (llama_cpp backend)
    bool chat = false;         // other backends: send as a chat conversation
    std::string system;        // with chat: system message
    std::string backend;  // empty or "native": this engine; otherwise any backend of the registry
    std::string url;
    draft_flags draft;  // speculative decoding
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

void run_other_backend(const run_options& o) {
    if (!o.prompt_ids.empty()) throw usage_error("--prompt-ids works only with the native backend");
    const engine::engine_params ep = o.session.params();  // validates -t -c -b
    o.sampling.params();                                  // and the sampling values
    backend_run_options b;
    b.backend = o.backend;
    b.model = o.session.model;
    b.url = o.url;
    b.prompt = o.prompt;
    b.n_predict = o.n_predict;
    b.temperature = o.sampling.p.temperature;
    b.top_k = o.sampling.p.top_k;
    b.top_p = o.sampling.p.top_p;
    b.min_p = o.sampling.p.min_p;
    b.repeat_penalty = o.sampling.p.repeat_penalty;
    if (o.sampling.seed >= 0) b.seed = static_cast<uint64_t>(o.sampling.seed);
    b.n_threads = ep.n_threads;
    b.n_ctx = static_cast<int>(ep.n_ctx);
    b.n_batch = static_cast<int>(ep.n_batch);
    b.json = o.json;
    b.chat = o.chat;
    b.system = o.system;
    if (!o.llama_server.empty()) b.extra["binary"] = o.llama_server;
    run_with_backend(b);
}

void run(const run_options& o) {
    if (o.session.model.empty())
        throw usage_error("no model given: use -m MODEL.gguf (or --model-name NAME for a server backend)");
    if (o.n_predict <= 0) throw usage_error(fmt::format("-n must be a positive number of tokens, got {}", o.n_predict));
    if (!o.backend.empty() && o.backend != "native") {
        if (!o.draft.model.empty() || o.draft.spec_ngram != 0)
            throw usage_error("--model-draft and --spec-ngram work with the native engine only (backend '" + o.backend +
                              "')");
        if (o.grammar.given()) throw usage_error("--grammar, --json-schema and --json-mode work with the native engine only");
        run_other_backend(o);
        return;
    }
    engine::engine_params ep = o.session.params();
    ep.spec = o.draft.ngram();
    engine::generation_params gp;
    gp.n_predict = o.n_predict;
    gp.ignore_eos = o.ignore_eos;
    gp.sampling = o.sampling.params();
    gp.sampling.grammar = o.grammar.load();  // before loading the model: a bad grammar fails fast

    engine::engine eng(ep);
    if (!eng.params().fallback_note.empty()) std::fprintf(stderr, "%s\n", eng.params().fallback_note.c_str());
    engine::text_codec codec(eng.shared_model());
    std::vector<int32_t> prompt;
    if (!o.prompt_ids.empty()) {
        if (o.prompt_given) throw usage_error("give either -p or --prompt-ids, not both");
        prompt = parse_ids(o.prompt_ids);
    } else {
        prompt = codec.encode_prompt(o.prompt);
    }
    codec.prime(prompt);  // the text continues the prompt: keep a leading space

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
    std::unique_ptr<engine::engine> draft;
    if (!o.draft.model.empty()) {
        draft = engine::open_draft(ep, o.draft.model, eng.params().n_ctx);
        engine::use_draft_model(eng, *draft, o.draft.spec);
    }
    const engine::generation_stats st = eng.generate(prompt, gp, on_token);
    const std::string tail = codec.flush();
    if (o.json)
        text += tail;
    else
        std::fwrite(tail.data(), 1, tail.size(), stdout);
    const auto& hp = eng.hparams();

    if (o.json) {
        nlohmann::json j;
        j["model"] = o.session.model;
        j["arch"] = hp.arch;
        j["n_threads"] = eng.params().n_threads;
        j["n_ctx"] = eng.params().n_ctx;
        j["n_batch"] = eng.params().n_batch;
        j["kv_type"] = std::string(type_name(eng.kv().type()));
        j["n_gpu_layers"] = eng.params().n_gpu_layers;
        j["gpu"] = eng.gpu_description();  // "" when every layer ran on the CPU
        j["seed"] = gp.sampling.seed;
        j["load_ms"] = st.load_ms;
        j["n_prompt"] = st.n_prompt;
        j["prefill_ms"] = st.prefill_ms;
        j["prefill_tokens_per_s"] = st.prefill_tokens_per_s();
        j["n_gen"] = st.n_gen();
        j["n_decode"] = st.n_decode;
        j["decode_ms"] = st.decode_ms;
        j["decode_tokens_per_s"] = st.decode_tokens_per_s();
        j["sample_ms"] = st.sample_ms;
        j["ttft_ms"] = st.ttft_ms();
        j["kv_bytes"] = st.kv_bytes;
        j["model_bytes"] = st.model_bytes;
        j["weight_bytes"] = eng.get_model().weights().n_matrix_bytes;
        j["packed_bytes"] = eng.get_model().packed_bytes();
        j["peak_rss_bytes"] = st.peak_rss_bytes;
        j["stop_reason"] = engine::name(st.stop);
        if (!eng.params().fallback_note.empty()) j["fallback"] = eng.params().fallback_note;
        if (ep.spec.enabled()) {
            j["spec_ngram"] = ep.spec.ngram;
            j["draft_max"] = ep.spec.draft_max;
            j["n_drafted"] = st.n_drafted;
            j["n_accepted"] = st.n_accepted;
            j["acceptance"] = st.n_drafted ? static_cast<double>(st.n_accepted) / static_cast<double>(st.n_drafted) : 0.0;
        }
        if (draft) {
            j["model_draft"] = o.draft.model;
            j["draft_max"] = o.draft.spec.draft_max;
            j["n_drafted"] = st.n_drafted;
            j["n_accepted"] = st.n_accepted;
            j["n_rounds"] = st.n_rounds();
            j["acceptance"] = st.n_drafted ? static_cast<double>(st.n_accepted) / static_cast<double>(st.n_drafted) : 0.0;
        }
        j["prompt_tokens"] = prompt;
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
                             o.session.model, hp.arch, hp.n_layer, eng.params().n_threads, st.load_ms, st.n_prompt,
                             st.prefill_ms, st.prefill_tokens_per_s(), st.n_gen(), st.n_decode, st.decode_ms,
                             st.decode_tokens_per_s(), engine::name(st.stop), format_bytes(st.kv_bytes),
                             type_name(eng.kv().type()), eng.params().n_ctx, format_bytes(st.peak_rss_bytes),
                             format_bytes(st.model_bytes))
                     .c_str());
    if (const std::string g = eng.gpu_description(); !g.empty()) std::fprintf(stderr, "%s\n", g.c_str());
    if (ep.spec.enabled())
        std::fprintf(stderr, "n-gram drafts (--spec-ngram %d): %lld of %lld drafted tokens accepted (%.1f %%), %lld decode "
                     "passes\n",
                     ep.spec.ngram, static_cast<long long>(st.n_accepted), static_cast<long long>(st.n_drafted),
                     st.n_drafted ? 100.0 * static_cast<double>(st.n_accepted) / static_cast<double>(st.n_drafted) : 0.0,
                     static_cast<long long>(st.n_decode));
    if (draft)
        std::fprintf(stderr, "draft: %s, %lld of %lld drafted tokens accepted (%.1f %%), %lld verification passes\n",
                     o.draft.model.c_str(), static_cast<long long>(st.n_accepted), static_cast<long long>(st.n_drafted),
                     st.n_drafted ? 100.0 * static_cast<double>(st.n_accepted) / static_cast<double>(st.n_drafted) : 0.0,
                     static_cast<long long>(st.n_rounds()));
}

void setup(CLI::App& app) {
    auto opts = std::make_shared<run_options>();
    CLI::App* cmd = app.add_subcommand("run", "Generate text from a GGUF model with the native engine");
    cmd->footer(
        "Examples:\n"
        "  edgellm run -m stories260K.gguf -p \"Once upon a time\" -n 64\n"
        "  edgellm run -m model.gguf -p \"\" -n 256 --temp 0        (greedy, from BOS)\n"
        "  edgellm run -m model.gguf --prompt-ids \"1 415 2936\" --json\n"
        "  edgellm run -m model.gguf -p \"A user as JSON:\" --json-schema user.schema.json\n"
        "  edgellm run -m model.gguf -p \"Answer yes or no:\" --grammar 'root ::= \"yes\" | \"no\"'\n");
    auto* model_opt = cmd->add_option("-m,--model,--model-path", opts->session.model, "GGUF model file");
    auto* name_opt = cmd->add_option("--model-name", opts->session.model,
                                     "model name for server backends (Ollama tag, served model)");
    model_opt->excludes(name_opt);
    cmd->add_option("-p,--prompt", opts->prompt, "prompt text (\"\" starts from BOS alone)")
        ->each([o = opts.get()](const std::string&) { o->prompt_given = true; });
    cmd->add_option("--prompt-ids", opts->prompt_ids, "prompt as token ids (\"1 2 3\"), used verbatim");
    cmd->add_option("-n,--n-predict", opts->n_predict, fmt::format("tokens to generate (default {})", opts->n_predict));
    opts->session.add_to(cmd);
    opts->sampling.add_to(cmd);
    opts->grammar.add_to(cmd);
    cmd->add_option("--backend", opts->backend, "backend to run on (default: native, this engine; see `edgellm list`)");
    cmd->add_option("--url", opts->url, "base URL of an HTTP backend");
    cmd->add_option("--llama-server", opts->llama_server, "llama-server binary for --backend llama_cpp");
    cmd->add_flag("--chat", opts->chat, "send the prompt as a chat message (server backends apply their template)");
    cmd->add_option("--system", opts->system, "system message with --chat");
    opts->draft.add_to(cmd, "speculative decoding: a small model with the same vocabulary proposes tokens the model "
                            "verifies in one pass (output distribution unchanged; identical at --temp 0)");
    cmd->add_flag("--ignore-eos", opts->ignore_eos, "keep generating past end-of-generation tokens");
    cmd->add_flag("--json", opts->json, "print the result and summary as one JSON object on stdout");
    cmd->callback([opts] { run(*opts); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("run", 30, setup);

}  // namespace edgellm::cli
