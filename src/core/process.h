// Child processes with pipes (for llama-server and Python workers): spawn, line I/O with
// timeouts, and a clean shutdown (SIGTERM, then SIGKILL) when the owner goes away.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace edgellm {

struct process_options {
    bool pipe_stdin = false;
    bool pipe_stdout = false;
    std::string stderr_path;  // empty: inherit; otherwise stderr (and stdout if not piped) go here
    std::vector<std::pair<std::string, std::string>> extra_env;
};

class child_process {
public:
    child_process() = default;
    // Starts argv[0] (searched on PATH). Throws edgellm::error when it cannot be started.
    child_process(const std::vector<std::string>& argv, const process_options& opts);
    ~child_process();
    child_process(child_process&& o) noexcept;
    child_process& operator=(child_process&& o) noexcept;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    bool running();                       // reaps the child if it has exited
    std::optional<int> exit_status() const { return exit_status_; }
    int pid() const { return pid_; }

    void write_line(const std::string& line);  // appends '\n'; throws if the pipe is closed
    void close_stdin();
    // Next line of stdout without the '\n'; nullopt on EOF. Throws edgellm::error on timeout.
    std::optional<std::string> read_line(double timeout_s);

    // SIGTERM, wait up to grace_s, then SIGKILL; always reaps. Safe to call twice.
    void terminate(double grace_s = 3.0);

private:
    int pid_ = -1;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    std::string buffer_;
    std::optional<int> exit_status_;
};

// Absolute path of an executable found on PATH (or the given path if it is executable).
std::optional<std::string> find_executable(const std::string& name);
// Directory of the running executable (from /proc/self/exe).
std::string self_exe_dir();

}  // namespace edgellm
