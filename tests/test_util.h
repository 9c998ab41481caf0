// Helpers shared by the GoogleTest suites: locating ../shared reference files and temp dirs.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace edgellm::test {

// Path of a file under ../shared (models, vocabs, templates).
inline std::filesystem::path shared_path(const std::string& rel) {
    const char* env = std::getenv("EDGELLM_SHARED");
    std::filesystem::path base = env ? env : EDGELLM_SHARED_DIR;
    return base / rel;
}

// A fresh temporary directory for one test, removed by the caller if it wishes.
inline std::filesystem::path temp_dir(const std::string& tag) {
    auto p = std::filesystem::temp_directory_path() /
             ("edgellm-test-" + tag + "-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
              "-" + std::to_string(std::rand()));
    std::filesystem::create_directories(p);
    return p;
}

}  // namespace edgellm::test

// Skips the current test with a clear message when a shared reference file is absent.
#define EDGELLM_REQUIRE_SHARED(path_var, rel)                                              \
    const auto path_var = ::edgellm::test::shared_path(rel);                               \
    if (!std::filesystem::exists(path_var))                                                \
    GTEST_SKIP() << "reference file missing: " << path_var << " (../shared not present)"
