// Human-readable sizes and counts ("1.23 GiB", "135.2M").
#pragma once
#include <cstdint>
#include <string>

namespace edgellm {

std::string format_bytes(uint64_t n_bytes);   // 1536 -> "1.50 KiB"
std::string format_count(uint64_t n);         // 135200000 -> "135.20M"
// "2G", "512M", "1.5GiB", "300k", "1048576" (binary units: k/K/KiB = 1024 ...); throws
// usage_error naming `what` for anything else.
uint64_t parse_size(const std::string& text, const std::string& what);

}  // namespace edgellm
