// Embeddings throughput: the same inputs through each backend's embeddings call.
#include "bench/embed_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/stats.h"
#include "core/error.h"

namespace edgellm::bench {

std::vector<std::string> embed_inputs(int n, uint64_t seed) {
    static const std::vector<std::string> words = {
        "the",       "a",         "of",      "model",   "vector",    "search",  "query",
        "document",  "retrieval", "answer",  "cat",     "dog",       "runs",    "quickly",
        "embedding", "sentence",  "meaning", "similar", "different", "network", "language",
        "small",     "edge",      "device",  "memory",  "fast",      "slow",    "city",
        "river",     "mountain",  "music",   "history", "science",   "market",  "price",
        "people",    "time",      "world",   "data"};
    static const int lengths[] = {6, 12, 24, 48, 96};
    std::mt19937_64 rng(seed);
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
        const int len = lengths[rng() % 5];
        std::string s;
        for (int w = 0; w < len; ++w) s += (w ? " " : "") + words[rng() % words.size()];
        out.push_back(s + ".");
    }
    return out;
}

std::vector<embed_sample> run_embed_benchmark(
    const embed_plan& plan, const progress_callback& progress,
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create) {
    if (plan.n_runs < 1)
        throw usage_error(fmt::format("--runs must be at least 1, got {}", plan.n_runs));
    if (plan.inputs.empty()) throw usage_error("bench --embed: no inputs to embed");
    if (plan.models.empty()) throw usage_error("bench --embed needs a model (-m MODEL.gguf)");
    const auto pairs = backend_model_pairs(plan.backends, plan.models, plan.pair_models);
    const size_t n_total = pairs.size() * static_cast<size_t>(plan.n_runs);
    size_t n_done = 0;
    std::vector<embed_sample> out;
    for (const auto& pair : pairs) {
        embed_sample s;
        s.backend = pair.first;
        s.model = pair.second;
        const auto fail = [&](const std::string& why) {
            s.error = why;
            if (progress) progress({s.backend, s.model, "failed", "", 0, n_done, n_total, why});
        };
        backends::backend_settings settings = plan.settings;
        settings.model = s.model;
        settings.extra["embedding"] = "1";
        std::unique_ptr<backends::backend> be;
        try {
            be = create ? create(s.backend) : backends::create_backend(s.backend);
            const auto avail = be->check_available(settings);
            if (!avail.available) {
                fail(avail.reason + (avail.hint.empty() ? "" : " (" + avail.hint + ")"));
                out.push_back(s);
                continue;
            }
            if (progress) progress({s.backend, s.model, "loading", "", 0, n_done, n_total, ""});
            be->load(settings);
            s.load_ms = be->load_ms();
            for (int w = 0; w < plan.n_warmup; ++w) {
                if (progress) progress({s.backend, s.model, "warm-up", "", w, n_done, n_total, ""});
                be->embed(plan.inputs);
            }
            for (int run = 0; run < plan.n_runs; ++run) {
                if (progress)
                    progress({s.backend, s.model, "run", "embed", run, n_done, n_total, ""});
                const backends::embed_stats st = be->embed(plan.inputs);
                if (st.n_inputs != static_cast<int64_t>(plan.inputs.size()))
                    throw error(fmt::format("{} embedded {} of {} inputs", s.backend, st.n_inputs,
                                            plan.inputs.size()));
                s.n_inputs = st.n_inputs;
                s.n_tokens = st.n_tokens;
                s.n_embd = st.n_embd;
                s.ms.push_back(st.ms);
                ++n_done;
            }
        } catch (const std::exception& ex) {
            fail(ex.what());
        }
        if (be) be->unload();
        out.push_back(s);
    }
    return out;
}

namespace {

struct row_figures {
    double best = 0, median = 0, inputs_per_s = 0, tokens_per_s = 0;
};

row_figures figures(const embed_sample& s) {
    row_figures f;
    if (s.ms.empty()) return f;
    f.best = *std::min_element(s.ms.begin(), s.ms.end());
    f.median = summarize(s.ms).p50;
    if (f.best > 0) {
        f.inputs_per_s = static_cast<double>(s.n_inputs) * 1e3 / f.best;
        f.tokens_per_s = static_cast<double>(s.n_tokens) * 1e3 / f.best;
    }
    return f;
}

}  // namespace

std::string render_embed(const std::vector<embed_sample>& samples, const embed_plan& plan,
                         bool markdown) {
    std::string out =
        fmt::format("embeddings: {} inputs, {} threads, best of {} runs (after {} warm-up)\n",
                    plan.inputs.size(),
                    plan.settings.n_threads > 0 ? std::to_string(plan.settings.n_threads)
                                                : std::string("default"),
                    plan.n_runs, plan.n_warmup);
    if (markdown)
        out +=
            "\n| backend | model | inputs | tokens | best ms | median ms | inputs/s | tokens/s |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|\n";
    else
        out +=
            fmt::format("{:<18} {:<28} {:>6} {:>7} {:>9} {:>9} {:>9} {:>9}\n", "backend", "model",
                        "inputs", "tokens", "best ms", "median ms", "inputs/s", "tokens/s");
    for (const auto& s : samples) {
        const std::string model = std::filesystem::path(s.model).filename().string();
        if (!s.error.empty()) {
            out += markdown ? fmt::format("| {} | {} | failed: {} | | | | | |\n", s.backend, model,
                                          s.error)
                            : fmt::format("{:<18} {:<28} failed: {}\n", s.backend, model, s.error);
            continue;
        }
        const row_figures f = figures(s);
        out += markdown
                   ? fmt::format("| {} | {} | {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.0f} |\n",
                                 s.backend, model, s.n_inputs, s.n_tokens, f.best, f.median,
                                 f.inputs_per_s, f.tokens_per_s)
                   : fmt::format("{:<18} {:<28} {:>6} {:>7} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.0f}\n",
                                 s.backend, model, s.n_inputs, s.n_tokens, f.best, f.median,
                                 f.inputs_per_s, f.tokens_per_s);
    }
    return out;
}

std::string embed_json(const std::vector<embed_sample>& samples, const embed_plan& plan) {
    nlohmann::json j;
    j["mode"] = "embed";
    j["n_inputs"] = plan.inputs.size();
    j["threads"] = plan.settings.n_threads;
    j["runs"] = plan.n_runs;
    j["warmup"] = plan.n_warmup;
    j["results"] = nlohmann::json::array();
    for (const auto& s : samples) {
        const row_figures f = figures(s);
        nlohmann::json r = {{"backend", s.backend},   {"model", s.model},
                            {"n_inputs", s.n_inputs}, {"n_tokens", s.n_tokens},
                            {"n_embd", s.n_embd},     {"load_ms", s.load_ms},
                            {"runs_ms", s.ms}};
        if (s.error.empty()) {
            r["best_ms"] = f.best;
            r["median_ms"] = f.median;
            r["inputs_per_s"] = f.inputs_per_s;
            r["tokens_per_s"] = f.tokens_per_s;
        } else {
            r["error"] = s.error;
        }
        j["results"].push_back(r);
    }
    return j.dump(2) + "\n";
}

}  // namespace edgellm::bench
