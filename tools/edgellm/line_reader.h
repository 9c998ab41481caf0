// Reading chat turns: line editing, history and Ctrl-R search through libedit on a terminal
// (history in $XDG_STATE_HOME/edgellm/history, default ~/.local/state/edgellm/history), pasted
// multi-line text kept as one input (bracketed paste), and plain getline for piped stdin.
// Ctrl-C while reading is reported as `interrupt`, not a signal death.
#pragma once
#include <memory>
#include <string>

namespace edgellm::cli {

enum class read_status { line, eof, interrupt };

struct read_result {
    read_status status = read_status::eof;
    std::string text;  // without the trailing newline
};

class line_reader {
public:
    // interactive: stdin is a terminal (libedit when built with it); otherwise getline.
    explicit line_reader(bool interactive);
    ~line_reader();
    line_reader(const line_reader&) = delete;
    line_reader& operator=(const line_reader&) = delete;

    read_result read(const std::string& prompt);
    void remember(const std::string& entry);  // adds to the history (and its file)
    bool editing() const;                     // line editing and history are on
    const std::string& history_path() const;

private:
    struct impl;
    std::unique_ptr<impl> p_;
};

// SIGINT sets a flag instead of killing the process while the chat runs (a reply in progress
// stops; at the prompt the reader reports `interrupt`). take_interrupt() reads and clears it.
void catch_interrupts();
bool take_interrupt();
bool interrupt_pending();

}  // namespace edgellm::cli
