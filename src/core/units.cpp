// Human-readable sizes and counts.
#include "core/units.h"

#include <fmt/format.h>

#include <cctype>
#include <string>

#include "core/error.h"

namespace edgellm {

std::string format_bytes(uint64_t n_bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n_bytes);
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    if (u == 0) return fmt::format("{} B", n_bytes);
    return fmt::format("{:.2f} {}", v, units[u]);
}

std::string format_count(uint64_t n) {
    if (n >= 1000000000ull) return fmt::format("{:.2f}B", n / 1e9);
    if (n >= 1000000ull) return fmt::format("{:.2f}M", n / 1e6);
    if (n >= 1000ull) return fmt::format("{:.2f}K", n / 1e3);
    return fmt::format("{}", n);
}

uint64_t parse_size(const std::string& text, const std::string& what) {
    size_t used = 0;
    double v = 0;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    std::string unit = text.substr(used);
    for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    double mult = 0;
    if (unit.empty() || unit == "b") mult = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024.0;
    else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024.0 * 1024;
    else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024.0 * 1024 * 1024;
    else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
    if (used == 0 || mult == 0 || !(v > 0) || v * mult > 1.8e19)
        throw usage_error(fmt::format("{}: '{}' is not a size (e.g. 2G, 512M, 1.5GiB)", what, text));
    return static_cast<uint64_t>(v * mult);
}

}  // namespace edgellm
