// Small helpers for reading /proc and /sys style text files below a root directory, so every
// device and monitor reader can run against a fixture tree in tests.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::device {

// `root` joined with an absolute system path: under_root("/tmp/fx", "/proc/meminfo").
std::filesystem::path under_root(const std::filesystem::path& root, std::string_view abs_path);

// Whole file as text, or nullopt when it does not exist or cannot be read (permissions).
std::optional<std::string> read_text(const std::filesystem::path& path);
// First line without the trailing newline and NUL bytes (device-tree strings end in NUL).
std::optional<std::string> read_line(const std::filesystem::path& path);
// A file holding one integer (sysfs style); nullopt when missing or not a number.
std::optional<int64_t> read_int(const std::filesystem::path& path);

std::string trim(std::string_view s);
std::vector<std::string> split_ws(std::string_view s);
std::vector<std::string> split(std::string_view s, char sep);
bool starts_with(std::string_view s, std::string_view prefix);
bool contains_nocase(std::string_view haystack, std::string_view needle);
std::optional<int64_t> parse_int(std::string_view s);

// Entries of a directory whose names start with `prefix`, sorted by name; empty when absent.
std::vector<std::filesystem::path> list_dir(const std::filesystem::path& dir,
                                            std::string_view prefix = "");

}  // namespace edgellm::device
