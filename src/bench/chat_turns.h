// Multi-turn chat workload (`edgellm bench --chat-turns N`): one conversation of N user turns in
// which every request resends the whole history so far, as chat UIs do, with the time to first
// token of each turn. A server that keeps the KV of the conversation's prefix (edgellm's prefix
// cache, llama-server's slot prompt cache) answers late turns about as fast as the first; one
// that re-evaluates the history gets slower every turn.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "bench/runner.h"

namespace edgellm::bench {

struct chat_turns_plan {
    std::vector<std::string> backends;
    std::vector<std::string> models;
    bool pair_models = false;
    std::map<std::string, std::string> served_model;  // backend -> the name it knows the model by
    int n_turns = 8;
    int n_runs = 3;      // conversations per (backend, model); each starts from its own system prompt
    int n_predict = 48;  // tokens per answer at most
    double temperature = 0.0;
    uint64_t seed = 42;
    backends::backend_settings settings;
};

struct chat_turn_sample {
    std::string backend;
    std::string model;
    int run = 0;
    int turn = 0;               // 1-based
    int64_t n_prompt = -1;      // prompt tokens the backend reported (-1: not reported)
    int64_t n_gen = 0;
    double ttft_ms = 0;
    double total_ms = 0;
    std::string error;
};

// The user messages of the workload's turns (the first n; they repeat past the list's end).
std::vector<std::string> chat_turn_questions(int n);

// Runs plan.n_runs conversations per (backend, model); a backend that is unavailable or fails
// gives samples with the error. Progress goes to `progress` (may be null).
std::vector<chat_turn_sample> run_chat_turns(const chat_turns_plan& plan, const progress_callback& progress);

// A table per (backend, model): for each turn the prompt size and the median TTFT over the runs,
// and the last turn's TTFT over the first's. Markdown when `markdown`.
std::string render_chat_turns(const std::vector<chat_turn_sample>& samples, bool markdown = false);

}  // namespace edgellm::bench
