// `edgellm chat`: interactive chat with a GGUF model on the native engine. Formats the history
// with the model's chat template (or a named built-in fallback), streams replies, and reads
// turns from a terminal or from piped stdin.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/jinja.h"
#include "command.h"
#include "common_flags.h"
#include "core/error.h"
#include "engine/engine.h"
#include "engine/text.h"
#include "tokenizer/vocab.h"

namespace edgellm::cli {
namespace {

struct chat_options {
    session_flags session;  // session.model: -m
    sampling_flags sampling;
    std::string system;
    std::string chat_template;  // built-in name, Jinja2 file, or empty: the model's / a fallback
    int n_predict = 512;
    bool stats = false;
    bool show_prompt = false;
};

std::optional<std::string> template_override(const std::string& arg) {
    if (arg.empty()) return std::nullopt;
    std::ifstream f(arg, std::ios::binary);
    if (f) {
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }
    return arg;  // a built-in name (select_template rejects unknown names, listing the known)
}

void write_out(const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
}

void chat(const chat_options& o) {
    if (o.n_predict <= 0) throw usage_error(fmt::format("-n must be positive, got {}", o.n_predict));
    engine::generation_params gp;
    gp.sampling = o.sampling.params();
    engine::engine eng(o.session.params());
    engine::text_codec codec(eng.shared_model());
    const tokenizer* tok = codec.get_tokenizer();
    if (!tok)
        throw usage_error("chat needs a model with tokenizer metadata; " + o.session.model + " has none usable");

    chat::chat_template tmpl = engine::model_chat_template(*eng.shared_model(), template_override(o.chat_template));
    std::fprintf(stderr, "chat template: %s (%s)\n", tmpl.name().c_str(), tmpl.reason().c_str());


    std::vector<chat::chat_message> history;
    auto reset = [&] {
        history.clear();
        if (!o.system.empty()) history.push_back({"system", o.system, {}});
    };
    reset();

    const bool interactive = isatty(STDIN_FILENO) != 0;
    const int64_t n_ctx = eng.params().n_ctx;
    if (interactive) std::fprintf(stderr, "Type a message; /reset clears the history, /exit quits.\n");
    std::string line;
    while (true) {
        if (interactive) write_out("> ");
        if (!std::getline(std::cin, line)) break;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!interactive) write_out("> " + line + "\n");
        if (line.empty()) continue;
        if (line == "/exit" || line == "/quit") break;
        if (line == "/reset") {
            reset();
            write_out("(history cleared)\n");
            continue;
        }
        if (line == "/help") {
            write_out("/reset  forget the conversation (keeps --system)\n/exit   quit\n");
            continue;
        }
        history.push_back({"user", line, {}});

        // Render, tokenize, and drop the oldest turns while the prompt leaves no room to answer.
        std::vector<int32_t> prompt;
        while (true) {
            if (o.show_prompt)
                std::fprintf(stderr, "[prompt]\n%s\n[/prompt]\n", chat::render_chat(tmpl, history, true).c_str());
            prompt = engine::encode_chat(*eng.shared_model(), tmpl, history);
            if (static_cast<int64_t>(prompt.size()) + 8 < n_ctx) break;
            size_t first = !history.empty() && history[0].role == "system" ? 1 : 0;
            if (history.size() - first <= 1)
                throw usage_error(fmt::format("the message needs {} tokens; the context holds {} (-c)", prompt.size(), n_ctx));
            history.erase(history.begin() + static_cast<std::ptrdiff_t>(first));
            std::fprintf(stderr, "(context full: dropped the oldest turn)\n");
        }

        gp.n_predict = static_cast<int>(std::min<int64_t>(o.n_predict, n_ctx - static_cast<int64_t>(prompt.size())));
        codec.reset();
        std::string reply;
        auto on_token = [&](int32_t t) {
            std::string piece = codec.push(t);
            reply += piece;
            write_out(piece);
            return true;
        };
        // The history is sent again each turn: its KV from the last turn is reused, so only the
        // new message is prefilled.
        engine::generation_stats st = eng.generate(prompt, gp, on_token, /*keep_kv=*/true);
        std::string tail = codec.flush();
        reply += tail;
        write_out(tail + "\n");
        history.push_back({"assistant", reply, {}});
        if (o.stats)
            std::fprintf(stderr, "[%lld prompt tokens (%lld reused from the cache), %lld generated, %.1f tokens/s, stop: %s]\n",
                         static_cast<long long>(st.n_prompt), static_cast<long long>(st.n_cached),
                         static_cast<long long>(st.n_gen),
                         st.decode_tokens_per_s, st.stop_reason.c_str());
    }
}

void setup(CLI::App& app) {
    auto opts = std::make_shared<chat_options>();
    CLI::App* cmd = app.add_subcommand("chat", "Chat with a GGUF model (interactive, or turns from piped stdin)");
    std::string names;
    for (const auto& n : chat::builtin_template_names()) names += (names.empty() ? "" : ", ") + n;
    cmd->footer(
        "Each line on stdin is one user turn; /reset forgets the history, /exit quits.\n"
        "The prompt is formatted with the model's tokenizer.chat_template, or a built-in fallback\n"
        "chosen from its vocabulary (printed on stderr). Built-ins: " + names + ".\n"
        "Examples:\n"
        "  edgellm chat -m qwen2.5-0.5b-instruct-q4_k_m.gguf --system \"Answer briefly.\"\n"
        "  printf 'Hi\\nTell me a story\\n' | edgellm chat -m stories260K.gguf --temp 0 -n 32\n"
        "  edgellm chat -m model.gguf --chat-template chatml\n");
    cmd->add_option("-m,--model", opts->session.model, "GGUF model file")->required();
    cmd->add_option("--system", opts->system, "system prompt");
    cmd->add_option("--chat-template", opts->chat_template, "built-in template name or a Jinja2 file");
    cmd->add_option("-n,--n-predict", opts->n_predict, "tokens per reply at most (default 512)");
    opts->session.add_to(cmd);
    opts->sampling.add_to(cmd);
    cmd->add_flag("--stats", opts->stats, "print token counts and speed after each reply (stderr)");
    cmd->add_flag("--show-prompt", opts->show_prompt, "print the formatted prompt before each reply (stderr)");
    cmd->callback([opts] { chat(*opts); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("chat", 35, setup);

}  // namespace edgellm::cli
