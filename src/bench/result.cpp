// Small derived values of the benchmark result structs.
#include "bench/result.h"

#include <fmt/format.h>

#include <ctime>

namespace edgellm::bench {

std::string micro_test_name(const micro_result& m) {
    std::string name;
    if (m.n_prompt > 0) name = fmt::format("pp{}", m.n_prompt);
    if (m.n_gen > 0) name += fmt::format("{}tg{}", name.empty() ? "" : "+", m.n_gen);
    if (name.empty()) name = "none";
    if (m.n_depth > 0) name += fmt::format(" @ d{}", m.n_depth);
    return name;
}

double aggregate_tokens_per_s(const sweep_point& p) {
    if (p.wall_ms <= 0.0) return 0.0;
    return static_cast<double>(p.n_gen_tokens) / (p.wall_ms / 1000.0);
}

std::string model_label(const std::string& model) {
    auto slash = model.find_last_of('/');
    if (slash == std::string::npos || slash + 1 == model.size()) return model;
    return model.substr(slash + 1);
}

std::string sanitize_utf8(std::string_view t) {
    std::string out;
    out.reserve(t.size());
    size_t i = 0;
    while (i < t.size()) {
        unsigned char c = static_cast<unsigned char>(t[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        bool ok = len > 0 && i + len <= t.size();
        for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(t[i + k]) & 0xC0) == 0x80;
        if (ok && len > 1) {
            // Reject overlong forms, surrogates and code points above U+10FFFF.
            uint32_t cp = c & (0x7F >> len);
            for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(t[i + k]) & 0x3F);
            static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= min_cp[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        }
        if (ok) {
            out.append(t.substr(i, len));
            i += len;
        } else {
            out += "\uFFFD";
            ++i;
        }
    }
    return out;
}

std::string utc_now_iso8601() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace edgellm::bench
