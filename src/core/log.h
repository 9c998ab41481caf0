// Minimal leveled logging to stderr. Level from EDGELLM_LOG (error|warn|info|debug), default warn.
#pragma once
#include <fmt/format.h>

#include <string_view>

namespace edgellm::log {

enum class level { error = 0, warn = 1, info = 2, debug = 3 };

level current_level();
void set_level(level l);
void write(level l, std::string_view msg);

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(level::error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (current_level() >= level::warn) write(level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (current_level() >= level::info) write(level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (current_level() >= level::debug) write(level::debug, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace edgellm::log
