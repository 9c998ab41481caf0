// Minimal leveled logging to stderr.
#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace edgellm::log {
namespace {
level level_from_env() {
    const char* e = std::getenv("EDGELLM_LOG");
    if (!e) return level::warn;
    if (!std::strcmp(e, "error")) return level::error;
    if (!std::strcmp(e, "info")) return level::info;
    if (!std::strcmp(e, "debug")) return level::debug;
    return level::warn;
}
std::atomic<int>& level_ref() {
    static std::atomic<int> l{static_cast<int>(level_from_env())};
    return l;
}
std::mutex& out_mutex() {
    static std::mutex m;
    return m;
}
}  // namespace

level current_level() { return static_cast<level>(level_ref().load()); }
void set_level(level l) { level_ref().store(static_cast<int>(l)); }

void write(level l, std::string_view msg) {
    static const char* names[] = {"error", "warning", "info", "debug"};
    std::lock_guard lock(out_mutex());
    std::fprintf(stderr, "%s: %.*s\n", names[static_cast<int>(l)], static_cast<int>(msg.size()), msg.data());
}

}  // namespace edgellm::log
