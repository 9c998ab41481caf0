#include "line_reader.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <vector>

#if EDGELLM_HAVE_LIBEDIT
#include <histedit.h>
#endif

namespace edgellm::cli {
namespace {

std::atomic<bool> g_interrupt{false};

void on_sigint(int) { g_interrupt.store(true); }

std::string default_history_path() {
    const char* state = std::getenv("XDG_STATE_HOME");
    const char* home = std::getenv("HOME");
    std::filesystem::path base = state && *state ? std::filesystem::path(state)
                                 : home && *home  ? std::filesystem::path(home) / ".local" / "state"
                                                  : std::filesystem::path();
    if (base.empty()) return "";
    return (base / "edgellm" / "history").string();
}

}  // namespace

void catch_interrupts() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR, so the prompt notices
    sigaction(SIGINT, &sa, nullptr);
}

bool take_interrupt() { return g_interrupt.exchange(false); }
bool interrupt_pending() { return g_interrupt.load(); }

struct line_reader::impl {
    bool interactive = false;
    std::string history_file;
#if EDGELLM_HAVE_LIBEDIT
    EditLine* el = nullptr;
    History* hist = nullptr;
    std::string prompt;
    std::vector<std::string> pastes;  // multi-line pastes behind "[pasted text #N: L lines]" markers

    static char* prompt_fn(EditLine* e) {
        void* data = nullptr;
        el_get(e, EL_CLIENTDATA, &data);
        return const_cast<char*>(static_cast<impl*>(data)->prompt.c_str());
    }

    // Bound to ESC [ 200 ~ (the start of a bracketed paste): reads up to ESC [ 201 ~ and inserts
    // the text; a paste with newlines becomes a marker that read() expands, so it stays one turn.
    static unsigned char paste_fn(EditLine* e, int) {
        void* data = nullptr;
        el_get(e, EL_CLIENTDATA, &data);
        auto* self = static_cast<impl*>(data);
        std::string text;
        const std::string end = "\033[201~";
        char c;
        while (el_getc(e, &c) == 1) {
            text += c;
            if (text.size() >= end.size() && text.compare(text.size() - end.size(), end.size(), end) == 0) {
                text.resize(text.size() - end.size());
                break;
            }
        }
        for (auto& ch : text)
            if (ch == '\r') ch = '\n';
        if (text.find('\n') == std::string::npos) {
            el_insertstr(e, text.c_str());
        } else {
            self->pastes.push_back(text);
            size_t lines = 1;
            for (char ch : text) lines += ch == '\n';
            if (!text.empty() && text.back() == '\n') --lines;
            const std::string marker = "[pasted text #" + std::to_string(self->pastes.size()) + ": " +
                                       std::to_string(lines) + " lines]";
            el_insertstr(e, marker.c_str());
        }
        return CC_REFRESH;
    }

    std::string expand_pastes(std::string line) {
        for (size_t i = 0; i < pastes.size(); ++i) {
            const std::string tag = "[pasted text #" + std::to_string(i + 1) + ":";
            const size_t at = line.find(tag);
            if (at == std::string::npos) continue;
            const size_t close = line.find(']', at);
            if (close == std::string::npos) continue;
            line.replace(at, close - at + 1, pastes[i]);
        }
        pastes.clear();
        return line;
    }
#endif
};

line_reader::line_reader(bool interactive) : p_(std::make_unique<impl>()) {
    p_->interactive = interactive;
#if EDGELLM_HAVE_LIBEDIT
    if (!interactive) return;
    p_->history_file = default_history_path();
    p_->el = el_init("edgellm", stdin, stdout, stderr);
    if (!p_->el) return;
    el_set(p_->el, EL_CLIENTDATA, p_.get());
    el_set(p_->el, EL_PROMPT, &impl::prompt_fn);
    el_set(p_->el, EL_EDITOR, "emacs");
    el_set(p_->el, EL_BIND, "^R", "em-inc-search-prev", nullptr);
    el_set(p_->el, EL_ADDFN, "edgellm-paste", "bracketed paste", &impl::paste_fn);
    el_set(p_->el, EL_BIND, "\033[200~", "edgellm-paste", nullptr);
    el_source(p_->el, nullptr);  // the user's ~/.editrc, if any
    p_->hist = history_init();
    HistEvent ev;
    history(p_->hist, &ev, H_SETSIZE, 2000);
    history(p_->hist, &ev, H_SETUNIQUE, 1);
    if (!p_->history_file.empty()) history(p_->hist, &ev, H_LOAD, p_->history_file.c_str());
    el_set(p_->el, EL_HIST, history, p_->hist);
#endif
}

line_reader::~line_reader() {
#if EDGELLM_HAVE_LIBEDIT
    if (p_->el) el_end(p_->el);
    if (p_->hist) history_end(p_->hist);
#endif
}

bool line_reader::editing() const {
#if EDGELLM_HAVE_LIBEDIT
    return p_->el != nullptr;
#else
    return false;
#endif
}

const std::string& line_reader::history_path() const { return p_->history_file; }

void line_reader::remember(const std::string& entry) {
#if EDGELLM_HAVE_LIBEDIT
    if (!p_->hist || entry.empty()) return;
    HistEvent ev;
    history(p_->hist, &ev, H_ENTER, entry.c_str());
    if (!p_->history_file.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(std::filesystem::path(p_->history_file).parent_path(), ec);
        history(p_->hist, &ev, H_SAVE, p_->history_file.c_str());
    }
#else
    (void)entry;
#endif
}

read_result line_reader::read(const std::string& prompt) {
#if EDGELLM_HAVE_LIBEDIT
    if (p_->el) {
        p_->prompt = prompt;
        std::fputs("\033[?2004h", stdout);  // bracketed paste on while we read
        std::fflush(stdout);
        int n = 0;
        errno = 0;
        const char* line = el_gets(p_->el, &n);
        std::fputs("\033[?2004l", stdout);
        std::fflush(stdout);
        if (!line) {
            if (n < 0 && (errno == EINTR || take_interrupt())) {
                take_interrupt();
                p_->pastes.clear();
                el_reset(p_->el);
                std::fputs("\n", stdout);
                return {read_status::interrupt, ""};
            }
            return {read_status::eof, ""};
        }
        std::string s(line, static_cast<size_t>(n));
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        return {read_status::line, p_->expand_pastes(std::move(s))};
    }
#endif
    if (p_->interactive) {
        std::fputs(prompt.c_str(), stdout);
        std::fflush(stdout);
    }
    std::string s;
    if (!std::getline(std::cin, s)) {
        if (take_interrupt()) {
            std::cin.clear();
            std::fputs("\n", stdout);
            return {read_status::interrupt, ""};
        }
        return {read_status::eof, ""};
    }
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return {read_status::line, s};
}

}  // namespace edgellm::cli
