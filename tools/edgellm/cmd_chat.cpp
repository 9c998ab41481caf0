// `edgellm chat`: interactive chat with a GGUF model on the native engine. Formats the history
// with the model's chat template (or a named built-in fallback) and streams replies. On a
// terminal: line editing, history and Ctrl-R (libedit), multi-line input ("""…""" blocks and
// pasted text), Ctrl-C stops a reply and keeps what was generated, /commands. Piped stdin: one
// line per turn, echoed.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/jinja.h"
#include "command.h"
#include "common_flags.h"
#include "core/error.h"
#include "engine/engine.h"
#include "engine/text.h"
#include "line_reader.h"
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

const char* k_help =
    "/help             this list\n"
    "/reset            forget the conversation (keeps the system prompt)\n"
    "/system TEXT      set the system prompt (/system alone removes it)\n"
    "/save FILE        write the conversation as JSON messages\n"
    "/load FILE        continue a saved conversation\n"
    "/stats            show token counts and speed after each reply (toggle)\n"
    "/set temp|top_k|top_p|min_p|seed|n VALUE   change sampling or the reply length\n"
    "/exit             quit (also Ctrl-D; Ctrl-C twice at the prompt)\n"
    "\"\"\"                start or end a multi-line message; pasted text stays one message\n"
    "Ctrl-C while the model answers stops the reply and keeps what it wrote.\n";

class chat_session {
public:
    explicit chat_session(const chat_options& o)
        : o_(o), eng_(o.session.params()), codec_(eng_.shared_model()), n_predict_(o.n_predict), stats_(o.stats) {
        sampling_ = o.sampling.params();
        if (!codec_.get_tokenizer())
            throw usage_error("chat needs a model with tokenizer metadata; " + o.session.model + " has none usable");
        tmpl_ = engine::model_chat_template(*eng_.shared_model(), template_override(o.chat_template));
        std::fprintf(stderr, "chat template: %s (%s)\n", tmpl_->name().c_str(), tmpl_->reason().c_str());
        system_ = o.system;
        reset();
        const char* term = std::getenv("TERM");
        color_ = isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR") && !(term && std::string(term) == "dumb");
    }

    void run() {
        const bool interactive = isatty(STDIN_FILENO) != 0;
        line_reader in(interactive);
        if (interactive) {
            catch_interrupts();
            std::fprintf(stderr, "Type a message; /help lists the commands, /exit quits.%s\n",
                         in.editing() ? ("\nLine editing and history (" + in.history_path() + ") are on; Ctrl-R searches it.")
                                            .c_str()
                                      : "");
        }
        const std::string prompt = color_ ? "\033[1;32m> \033[0m" : "> ";
        bool interrupted_once = false;
        while (true) {
            read_result r = in.read(prompt);
            if (r.status == read_status::eof) break;
            if (r.status == read_status::interrupt) {
                if (interrupted_once) break;
                interrupted_once = true;
                std::fprintf(stderr, "(Ctrl-C again or Ctrl-D to exit; /help for the commands)\n");
                continue;
            }
            interrupted_once = false;
            std::string line = r.text;
            if (!interactive) write_out("> " + line + "\n");
            if (line.rfind("\"\"\"", 0) == 0) {  // a multi-line block up to a line that is """
                std::string text = line.substr(3);
                while (true) {
                    read_result more = in.read(color_ ? "\033[32m. \033[0m" : ". ");
                    if (more.status != read_status::line) {
                        text.clear();
                        break;
                    }
                    if (!interactive) write_out(". " + more.text + "\n");
                    if (more.text.size() >= 3 && more.text.compare(more.text.size() - 3, 3, "\"\"\"") == 0) {
                        text += (text.empty() ? "" : "\n") + more.text.substr(0, more.text.size() - 3);
                        break;
                    }
                    text += (text.empty() ? "" : "\n") + more.text;
                }
                line = text;
                if (line.empty()) continue;
            } else {
                in.remember(line);
            }
            if (line.empty()) continue;
            if (line[0] == '/' && line.find('\n') == std::string::npos) {
                if (!command(line)) break;
                continue;
            }
            turn(line);
        }
    }

private:
    void reset() {
        history_.clear();
        if (!system_.empty()) history_.push_back({"system", system_, {}});
    }

    void note(const std::string& s) const {
        std::fprintf(stderr, color_ ? "\033[2m%s\033[0m\n" : "%s\n", s.c_str());
    }

    // Handles a /command; false to quit.
    bool command(const std::string& line) {
        const size_t sp = line.find(' ');
        const std::string cmd = line.substr(0, sp);
        const std::string arg = sp == std::string::npos ? "" : line.substr(line.find_first_not_of(' ', sp) == std::string::npos ? line.size() : line.find_first_not_of(' ', sp));
        try {
            if (cmd == "/exit" || cmd == "/quit" || cmd == "/bye") return false;
            if (cmd == "/help" || cmd == "/?") {
                write_out(k_help);
            } else if (cmd == "/reset" || cmd == "/clear") {
                reset();
                write_out("(history cleared)\n");
            } else if (cmd == "/system") {
                system_ = arg;
                if (!history_.empty() && history_[0].role == "system") history_.erase(history_.begin());
                if (!system_.empty()) history_.insert(history_.begin(), {"system", system_, {}});
                write_out(system_.empty() ? "(system prompt removed)\n" : "(system prompt set)\n");
            } else if (cmd == "/save") {
                save(arg);
            } else if (cmd == "/load") {
                load(arg);
            } else if (cmd == "/stats") {
                stats_ = !stats_;
                write_out(stats_ ? "(stats after each reply: on)\n" : "(stats after each reply: off)\n");
                if (!last_stats_.empty()) note(last_stats_);
            } else if (cmd == "/set") {
                set(arg);
            } else {
                write_out(fmt::format("unknown command {} (/help lists them)\n", cmd));
            }
        } catch (const std::exception& e) {
            write_out(fmt::format("error: {}\n", e.what()));
        }
        return true;
    }

    void set(const std::string& arg) {
        std::istringstream ss(arg);
        std::string key, value;
        if (!(ss >> key >> value)) throw usage_error("usage: /set temp|top_k|top_p|min_p|seed|n VALUE");
        auto num = [&](double lo, double hi) {
            char* end = nullptr;
            const double v = std::strtod(value.c_str(), &end);
            if (!end || *end || v < lo || v > hi)
                throw usage_error(fmt::format("{} must be a number in [{}, {}], got '{}'", key, lo, hi, value));
            return v;
        };
        if (key == "temp" || key == "temperature") sampling_.temperature = static_cast<float>(num(0, 100));
        else if (key == "top_k" || key == "top-k") sampling_.top_k = static_cast<int>(num(0, 1e9));
        else if (key == "top_p" || key == "top-p") sampling_.top_p = static_cast<float>(num(0, 1));
        else if (key == "min_p" || key == "min-p") sampling_.min_p = static_cast<float>(num(0, 1));
        else if (key == "seed") sampling_.seed = static_cast<uint64_t>(num(0, 1.8e19));
        else if (key == "n" || key == "n_predict") n_predict_ = static_cast<int>(num(1, 1e7));
        else throw usage_error(fmt::format("cannot /set '{}' (temp, top_k, top_p, min_p, seed, n)", key));
        write_out(fmt::format("({} = {})\n", key, value));
    }

    void save(const std::string& path) {
        if (path.empty()) throw usage_error("usage: /save FILE");
        nlohmann::json msgs = nlohmann::json::array();
        for (const auto& m : history_) msgs.push_back({{"role", m.role}, {"content", m.content}});
        std::ofstream f(path, std::ios::trunc);
        f << nlohmann::json{{"messages", msgs}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
        if (!f) throw error(fmt::format("cannot write {}", path));
        write_out(fmt::format("(saved {} messages to {})\n", history_.size(), path));
    }

    void load(const std::string& path) {
        if (path.empty()) throw usage_error("usage: /load FILE");
        std::ifstream f(path);
        if (!f) throw error(fmt::format("cannot read {}", path));
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(f);
        } catch (const nlohmann::json::exception& e) {
            throw error(fmt::format("{} is not JSON: {}", path, e.what()));
        }
        const auto& msgs = j.is_object() && j.contains("messages") ? j["messages"] : j;
        if (!msgs.is_array()) throw error(fmt::format("{}: expected {{\"messages\": [{{role, content}}, ...]}}", path));
        std::vector<chat::chat_message> loaded;
        for (const auto& m : msgs) {
            if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
                !m["content"].is_string())
                throw error(fmt::format("{}: every message needs string 'role' and 'content'", path));
            const std::string role = m["role"];
            if (role != "system" && role != "user" && role != "assistant")
                throw error(fmt::format("{}: unknown role '{}'", path, role));
            loaded.push_back({role, m["content"].get<std::string>(), {}});
        }
        history_ = std::move(loaded);
        system_ = !history_.empty() && history_[0].role == "system" ? history_[0].content : "";
        write_out(fmt::format("(loaded {} messages from {})\n", history_.size(), path));
    }

    // Renders the history into a prompt that leaves room for a reply: whole oldest user+assistant
    // turns go first (never the system prompt). Returns the reply budget, 0 when even the new
    // message alone does not fit (it is then taken back out of the history).
    int fit_context(std::vector<int32_t>& prompt) {
        const int64_t n_ctx = eng_.params().n_ctx;
        while (true) {
            if (o_.show_prompt)
                std::fprintf(stderr, "[prompt]\n%s\n[/prompt]\n", chat::render_chat(*tmpl_, history_, true).c_str());
            prompt = engine::encode_chat(*eng_.shared_model(), *tmpl_, history_);
            const int64_t room = n_ctx - static_cast<int64_t>(prompt.size());
            if (room >= n_predict_) return n_predict_;
            const size_t first = !history_.empty() && history_[0].role == "system" ? 1 : 0;
            if (history_.size() - first > 1) {  // an older turn to drop
                size_t n = 1;
                if (history_[first].role == "user" && first + 1 < history_.size() - 1 &&
                    history_[first + 1].role == "assistant")
                    n = 2;
                history_.erase(history_.begin() + static_cast<std::ptrdiff_t>(first),
                               history_.begin() + static_cast<std::ptrdiff_t>(first + n));
                note(fmt::format("(context: {} tokens of {} with {} for the reply; dropped the oldest turn)",
                                 prompt.size(), n_ctx, n_predict_));
                continue;
            }
            if (room >= 16) {
                note(fmt::format("(context: the message takes {} of {} tokens; the reply gets at most {})", prompt.size(),
                                 n_ctx, room));
                return static_cast<int>(room);
            }
            history_.pop_back();
            write_out(fmt::format("error: the message needs {} tokens and the context holds {} (-c); it was not sent\n",
                                  prompt.size(), n_ctx));
            return 0;
        }
    }

    void turn(const std::string& text) {
        history_.push_back({"user", text, {}});
        std::vector<int32_t> prompt;
        const int budget = fit_context(prompt);
        if (budget == 0) return;
        engine::generation_params gp;
        gp.sampling = sampling_;
        gp.n_predict = budget;
        codec_.reset();
        std::string reply;
        bool stopped = false;
        // With --stats on a terminal, the live decode speed goes to the window title (OSC 2) while
        // the reply streams, so it never mixes into the text; the summary line follows the reply.
        const bool live = stats_ && isatty(STDOUT_FILENO);
        std::chrono::steady_clock::time_point t_first{}, last_shown{};
        int64_t n_tokens = 0;
        auto on_token = [&](int32_t t) {
            if (take_interrupt()) {
                stopped = true;
                return false;
            }
            std::string piece = codec_.push(t);
            reply += piece;
            write_out(piece);
            const auto now = std::chrono::steady_clock::now();
            if (n_tokens++ == 0) t_first = last_shown = now;
            if (live && now - last_shown > std::chrono::milliseconds(250)) {
                last_shown = now;  // decode speed: the tokens after the first over the time since it
                const double s = std::chrono::duration<double>(now - t_first).count();
                write_out(fmt::format("\033]2;edgellm chat: {} tokens, {:.1f} tokens/s\007", n_tokens,
                                      (n_tokens - 1) / s));
            }
            return true;
        };
        // The history is sent again each turn: its KV from the last turn is reused, so only the
        // new message is prefilled.
        engine::generation_stats st = eng_.generate(prompt, gp, on_token, /*keep_kv=*/true);
        std::string tail = codec_.flush();
        reply += tail;
        if (live) tail += "\033]2;edgellm chat\007";  // the title back once the reply is done
        write_out(tail + "\n");
        if (stopped) note("(stopped; the reply so far is kept)");
        history_.push_back({"assistant", reply, {}});
        last_stats_ = fmt::format("[{} prompt tokens ({} reused from the cache), {} generated, {:.1f} tokens/s, stop: {}]",
                                  st.n_prompt, st.n_cached, st.n_gen(), st.decode_tokens_per_s(),
                                  stopped ? std::string("interrupted") : std::string(engine::name(st.stop)));
        if (stats_) note(last_stats_);
    }

    const chat_options& o_;
    engine::engine eng_;
    engine::text_codec codec_;
    std::optional<chat::chat_template> tmpl_;
    sampling::sampling_params sampling_;
    std::vector<chat::chat_message> history_;
    std::string system_;
    int n_predict_;
    bool stats_;
    bool color_ = false;
    std::string last_stats_;
};

void chat(const chat_options& o) {
    if (o.n_predict <= 0) throw usage_error(fmt::format("-n must be positive, got {}", o.n_predict));
    chat_session(o).run();
}

void setup(CLI::App& app) {
    auto opts = std::make_shared<chat_options>();
    CLI::App* cmd = app.add_subcommand("chat", "Chat with a GGUF model (interactive, or turns from piped stdin)");
    std::string names;
    for (const auto& n : chat::builtin_template_names()) names += (names.empty() ? "" : ", ") + n;
    cmd->footer(
        "On a terminal: line editing, history (~/.local/state/edgellm/history) and Ctrl-R; \"\"\" starts and\n"
        "ends a multi-line message; Ctrl-C stops a reply; /help lists the commands (/reset, /system,\n"
        "/save, /load, /stats, /set, /exit). Piped stdin: each line is one user turn.\n"
        "The prompt is formatted with the model's tokenizer.chat_template, or a built-in fallback\n"
        "chosen from its vocabulary (printed on stderr). Built-ins: " + names + ".\n"
        "When the context fills, whole oldest turns are dropped (never the system prompt), keeping\n"
        "room for a reply of -n tokens.\n"
        "Examples:\n"
        "  edgellm chat -m qwen2.5-0.5b-instruct-q4_k_m.gguf --system \"Answer briefly.\"\n"
        "  printf 'Hi\\nTell me a story\\n' | edgellm chat -m stories260K.gguf --temp 0 -n 32\n"
        "  edgellm chat -m model.gguf --chat-template chatml\n");
    cmd->add_option("-m,--model", opts->session.model, "GGUF model file or stored model name")->required();
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
