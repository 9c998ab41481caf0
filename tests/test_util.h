// Helpers shared by the GoogleTest suites: locating ../shared reference files and temp dirs.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model/hparams.h"

namespace edgellm::test {

// Gemma-3-270M's KV geometry: 18 layers, every 6th global, a 512 window, one 256-wide KV head.
inline model::model_hparams gemma3_270m_kv_hparams() {
    model::model_hparams hp;
    hp.n_layer = 18;
    hp.n_head = 4;
    hp.n_head_kv = 1;
    hp.head_dim = 256;
    hp.n_embd = 640;
    hp.n_swa = 512;
    hp.swa_pattern = 6;
    return hp;
}

// Path of a file under ../shared (models, vocabs, templates).
inline std::filesystem::path shared_path(const std::string& rel) {
    const char* env = std::getenv("EDGELLM_SHARED");
    std::filesystem::path base = env ? env : EDGELLM_SHARED_DIR;
    return base / rel;
}

// A fresh temporary directory for one test, removed by the caller if it wishes.
inline std::filesystem::path temp_dir(const std::string& tag) {
    auto p = std::filesystem::temp_directory_path() /
             ("edgellm-test-" + tag + "-" + std::to_string(::getpid()) + "-" +
              std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" + std::to_string(std::rand()));
    std::filesystem::create_directories(p);
    return p;
}

// Token ids from a file such as models/stories260K.greedy.ids.txt ("[403, 407, ...]"; brackets,
// commas and whitespace separate them).
inline std::vector<int32_t> read_ids(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char& c : s)
        if (c == '[' || c == ']' || c == ',') c = ' ';
    std::istringstream is(s);
    std::vector<int32_t> ids;
    for (int32_t v; is >> v;) ids.push_back(v);
    return ids;
}

}  // namespace edgellm::test

// Skips the current test with a clear message when a shared reference file is absent.
#define EDGELLM_REQUIRE_SHARED(path_var, rel)                                              \
    const auto path_var = ::edgellm::test::shared_path(rel);                               \
    if (!std::filesystem::exists(path_var))                                                \
    GTEST_SKIP() << "reference file missing: " << path_var << " (../shared not present)"
