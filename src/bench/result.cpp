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

std::string utc_now_iso8601() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace edgellm::bench
