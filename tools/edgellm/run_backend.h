// `edgellm run --backend X`: one prompt through any backend of the registry, with the same
// flags and the same summary for every backend.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace edgellm::cli {

struct backend_run_options {
    std::string backend;
    std::string model;       // GGUF path, Ollama tag or served model name
    std::string url;         // base URL of an HTTP backend (empty: its default)
    std::string prompt;
    std::string system;      // with chat: a system message
    bool chat = false;       // send as a chat conversation (the backend applies the template)
    int n_predict = 128;
    float temperature = 0.8f;
    int top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.0f;
    std::optional<uint64_t> seed;
    int n_threads = 0;
    int n_ctx = 0;
    int n_batch = 0;
    int n_gpu_layers = -1;
    double timeout_s = 300;
    bool json = false;
    std::map<std::string, std::string> extra;
};

void run_with_backend(const backend_run_options& o);

}  // namespace edgellm::cli
