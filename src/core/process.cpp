// Child processes with pipes: posix_spawn, poll-based line reads, SIGTERM/SIGKILL shutdown.
#include "core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/timing.h"

extern char** environ;

namespace edgellm {

child_process::child_process(const std::vector<std::string>& argv, const process_options& opts) {
    if (argv.empty()) throw error("cannot start a process: empty command");
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    if (opts.pipe_stdin && ::pipe2(in_pipe, O_CLOEXEC) != 0) throw error(std::string("pipe: ") + std::strerror(errno));
    if (opts.pipe_stdout && ::pipe2(out_pipe, O_CLOEXEC) != 0) throw error(std::string("pipe: ") + std::strerror(errno));

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (opts.pipe_stdin) posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    if (opts.pipe_stdout) posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    if (!opts.stderr_path.empty()) {
        posix_spawn_file_actions_addopen(&fa, 2, opts.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (!opts.pipe_stdout) posix_spawn_file_actions_adddup2(&fa, 2, 1);
    }
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Own process group, so terminal Ctrl-C goes to us and we shut the child down cleanly.
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);

    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
    for (const auto& [k, v] : opts.extra_env) env_store.push_back(k + "=" + v);
    std::vector<char*> envp, args;
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto& s : argv_copy) args.push_back(s.data());
    args.push_back(nullptr);

    int rc = posix_spawnp(&pid_, args[0], &fa, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (opts.pipe_stdin) ::close(in_pipe[0]);
    if (opts.pipe_stdout) ::close(out_pipe[1]);
    if (rc != 0) {
        if (opts.pipe_stdin) ::close(in_pipe[1]);
        if (opts.pipe_stdout) ::close(out_pipe[0]);
        pid_ = -1;
        throw error("cannot start '" + argv[0] + "': " + std::strerror(rc));
    }
    stdin_fd_ = opts.pipe_stdin ? in_pipe[1] : -1;
    stdout_fd_ = opts.pipe_stdout ? out_pipe[0] : -1;
}

child_process::~child_process() { terminate(); }

child_process::child_process(child_process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      stdin_fd_(std::exchange(o.stdin_fd_, -1)),
      stdout_fd_(std::exchange(o.stdout_fd_, -1)),
      buffer_(std::move(o.buffer_)),
      exit_status_(o.exit_status_) {}

child_process& child_process::operator=(child_process&& o) noexcept {
    if (this != &o) {
        terminate();
        pid_ = std::exchange(o.pid_, -1);
        stdin_fd_ = std::exchange(o.stdin_fd_, -1);
        stdout_fd_ = std::exchange(o.stdout_fd_, -1);
        buffer_ = std::move(o.buffer_);
        exit_status_ = o.exit_status_;
    }
    return *this;
}

bool child_process::running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = -1;
        return false;
    }
    return true;
}

void child_process::write_line(const std::string& line) {
    if (stdin_fd_ < 0) throw error("process stdin is closed");
    std::string data = line + "\n";
    size_t off = 0;
    // A dead reader would raise SIGPIPE; ignore it for this write and report EPIPE instead.
    struct sigaction ign {}, old {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old);
    while (off < data.size()) {
        ssize_t n = ::write(stdin_fd_, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::sigaction(SIGPIPE, &old, nullptr);
            throw error(std::string("cannot write to process: ") + std::strerror(e));
        }
        off += static_cast<size_t>(n);
    }
    ::sigaction(SIGPIPE, &old, nullptr);
}

void child_process::close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
}

std::optional<std::string> child_process::read_line(double timeout_s) {
    if (stdout_fd_ < 0) return std::nullopt;
    const double deadline = now_ms() + timeout_s * 1000;
    for (;;) {
        auto nl = buffer_.find('\n');
        if (nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        double left = deadline - now_ms();
        if (left <= 0) throw error("process did not answer within " + std::to_string(static_cast<int>(timeout_s)) + " s");
        pollfd p{stdout_fd_, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min(left, 1000.0)) + 1);
        if (r < 0 && errno != EINTR) throw error(std::string("poll: ") + std::strerror(errno));
        if (r <= 0) continue;
        char buf[65536];
        ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw error(std::string("cannot read from process: ") + std::strerror(errno));
        }
        if (n == 0) {
            if (buffer_.empty()) return std::nullopt;
            std::string rest = std::move(buffer_);
            buffer_.clear();
            return rest;
        }
        buffer_.append(buf, static_cast<size_t>(n));
    }
}

void child_process::terminate(double grace_s) {
    close_stdin();
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    stdout_fd_ = -1;
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const double deadline = now_ms() + grace_s * 1000;
    while (running() && now_ms() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        exit_status_ = 128 + SIGKILL;
        pid_ = -1;
    }
}

std::optional<std::string> find_executable(const std::string& name) {
    namespace fs = std::filesystem;
    if (name.find('/') != std::string::npos) {
        if (::access(name.c_str(), X_OK) == 0 && fs::is_regular_file(name)) return fs::absolute(name).string();
        return std::nullopt;
    }
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= p.size()) {
        size_t end = p.find(':', start);
        if (end == std::string::npos) end = p.size();
        std::string dir = p.substr(start, end - start);
        if (!dir.empty()) {
            std::string cand = dir + "/" + name;
            if (::access(cand.c_str(), X_OK) == 0 && fs::is_regular_file(cand)) return cand;
        }
        start = end + 1;
    }
    return std::nullopt;
}

std::string self_exe_dir() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return ".";
    return p.parent_path().string();
}

}  // namespace edgellm
