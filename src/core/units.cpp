// Human-readable sizes and counts.
#include "core/units.h"

#include <fmt/format.h>

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

}  // namespace edgellm
