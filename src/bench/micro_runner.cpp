// Micro mode runner (see micro_runner.h): list parsing, combination expansion, the native
// engine timed on synthetic tokens, and other backends measured from their own timings.
#include "bench/micro_runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <charconv>
#include <cmath>
#include <map>
#include <random>

#include "core/error.h"
#include "core/timing.h"
#include "engine/engine.h"

namespace edgellm::bench {

std::vector<int> parse_int_list(const std::string& text, const std::string& flag, int min_value) {
    std::vector<int> out;
    if (text.empty())
        throw usage_error(
            fmt::format("{} wants a comma-separated list of integers, got nothing", flag));
    size_t start = 0;
    for (;;) {
        size_t comma = text.find(',', start);
        std::string item =
            text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        int v = 0;
        auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        if (item.empty() || ec != std::errc() || end != item.data() + item.size())
            throw usage_error(fmt::format(
                "{}: '{}' is not an integer (in '{}'; lists are comma-separated, e.g. 128,512)",
                flag, item, text));
        if (v < min_value)
            throw usage_error(fmt::format("{}: {} is out of range (each value must be at least {})",
                                          flag, v, min_value));
        out.push_back(v);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

std::pair<int, int> parse_pg_pair(const std::string& text) {
    auto v = parse_int_list(text, "-pg", 1);
    if (v.size() != 2)
        throw usage_error(fmt::format(
            "-pg wants two positive integers PROMPT,GEN (e.g. 512,128), got '{}'", text));
    return {v[0], v[1]};
}

std::vector<micro_case> expand_micro_cases(const micro_plan& plan) {
    if (plan.models.empty()) throw usage_error("micro mode: no model given (-m MODEL)");
    if (plan.backends.empty()) throw usage_error("micro mode: no backend given");
    if (plan.n_prompt.empty() && plan.n_gen.empty() && plan.pg.empty())
        throw usage_error("micro mode: no test given (-p N, -n N or -pg N,M)");
    if (plan.n_reps <= 0)
        throw usage_error(fmt::format("repetitions must be positive, got {}", plan.n_reps));
    std::vector<std::pair<int, int>> tests;
    for (int p : plan.n_prompt) tests.emplace_back(p, 0);
    for (int n : plan.n_gen) tests.emplace_back(0, n);
    for (const auto& pg : plan.pg) tests.push_back(pg);
    std::vector<micro_case> out;
    for (const auto& [backend, model] : backend_model_pairs(plan.backends, plan.models, plan.pair_models))
        for (int nb : plan.n_batch)
            for (int nt : plan.n_threads)
                for (int ngl : plan.n_gpu_layers)
                    for (int d : plan.n_depth)
                        for (const auto& [p, n] : tests)
                            out.push_back({backend, model, p, n, nt, nb, ngl, d});
    return out;
}

namespace {

micro_result result_of(const micro_case& c) {
    micro_result r;
    r.backend = c.backend;
    r.model = c.model;
    r.n_prompt = c.n_prompt;
    r.n_gen = c.n_gen;
    r.n_threads = c.n_threads;
    r.n_batch = c.n_batch;
    r.n_gpu_layers = c.n_gpu_layers;
    r.n_depth = c.n_depth;
    return r;
}

// The native engine, one engine per (model, batch) since the scratch buffers are sized by the
// batch; threads change per case. Only the forward passes of the test are timed.
class native_micro {
  public:
    native_micro(const micro_plan& plan, uint64_t seed) : plan_(plan), rng_(seed) {}

    void run(const micro_case& c, micro_result& r, int n_reps) {
        engine::engine& e = engine_for(c);
        const int64_t need = static_cast<int64_t>(c.n_depth) + c.n_prompt + c.n_gen;
        if (need > e.kv().n_ctx())
            throw usage_error(fmt::format(
                "the test needs {} positions (depth + prompt + generated) but the context "
                "holds {} (the model's maximum or -c)",
                need, e.kv().n_ctx()));
        if (c.n_threads > 0)
            e.set_n_threads(c.n_threads);
        else
            e.set_n_threads(default_threads_);
        r.n_threads = e.forward().n_threads();
        once(e, c);  // warm-up
        for (int i = 0; i < n_reps; ++i) {
            const double ms = once(e, c);
            r.tokens_per_s.push_back(ms > 0 ? 1000.0 * (c.n_prompt + c.n_gen) / ms : 0.0);
        }
    }

  private:
    engine::engine& engine_for(const micro_case& c) {
        auto key = std::make_tuple(c.model, c.n_batch, std::max(0, c.n_gpu_layers));
        if (key_ == key && engine_) return *engine_;
        engine_.reset();
        // One load per model; a session per (model, batch) since the scratch buffers are sized
        // by the batch.
        // The context fits the largest test of this model (positions are cheap on small models,
        // and a model with a shorter trained context reports the test that does not fit).
        int64_t need = 1;
        for (const auto& d : plan_.n_depth)
            for (int p : plan_.n_prompt) need = std::max<int64_t>(need, d + p);
        for (const auto& d : plan_.n_depth) {
            for (int n : plan_.n_gen) need = std::max<int64_t>(need, d + n);
            for (const auto& [p, n] : plan_.pg) need = std::max<int64_t>(need, d + p + n);
        }
        const int64_t set_ctx = plan_.settings.n_ctx;
        auto size_ctx = [need, set_ctx](engine::engine_params& e, const model::model_hparams& hp) {
            e.n_ctx = set_ctx > 0 ? set_ctx : std::min<int64_t>(need, hp.n_ctx_train);
        };
        engine::engine_params ep;
        ep.model_path = c.model;
        ep.n_batch = c.n_batch;
        ep.n_threads = std::max(0, plan_.settings.n_threads);
        ep.n_gpu_layers = std::max(0, c.n_gpu_layers);  // refused with the reason when it cannot be offloaded
        if (!model_ || model_path_ != c.model) {
            model_.reset();
            engine::engine_params lp = ep;
            model_ = engine::load_model_for(lp, size_ctx);
            model_path_ = c.model;
        }
        size_ctx(ep, model_->hparams());
        engine_ = std::make_unique<engine::engine>(model_, ep);
        default_threads_ = engine_->params().n_threads;
        key_ = key;
        n_vocab_ = engine_->hparams().n_vocab;
        return *engine_;
    }

    int32_t random_token() {
        return static_cast<int32_t>(rng_() % static_cast<uint64_t>(n_vocab_));
    }

    // One repetition: fill the depth (untimed), then time the prompt pass and the decode steps.
    double once(engine::engine& e, const micro_case& c) {
        model::kv_cache& kv = e.kv_mut();
        kv.clear(0);
        model::batch b;
        for (int i = 0; i < c.n_depth; ++i) b.add(random_token(), i, 0, false);
        if (!b.tokens.empty()) e.forward().eval(kv, b);
        double ms = 0;
        int64_t pos = c.n_depth;
        if (c.n_prompt > 0) {
            b.clear();
            for (int i = 0; i < c.n_prompt; ++i)
                b.add(random_token(), pos + i, 0, i + 1 == c.n_prompt);
            stopwatch sw;
            e.forward().eval(kv, b);
            ms += sw.elapsed_ms();
            pos += c.n_prompt;
        }
        for (int i = 0; i < c.n_gen; ++i) {
            b.clear();
            b.add(random_token(), pos + i, 0, true);
            stopwatch sw;
            e.forward().eval(kv, b);
            ms += sw.elapsed_ms();
        }
        return ms;
    }

    const micro_plan& plan_;
    std::mt19937_64 rng_;
    std::shared_ptr<const engine::loaded_model> model_;
    std::string model_path_;
    std::unique_ptr<engine::engine> engine_;
    std::tuple<std::string, int, int> key_;  // model, batch, GPU layers
    int64_t n_vocab_ = 1;
    int default_threads_ = 1;
};

// A prompt of about n tokens for backends that take text: common English words, one token
// each in most vocabularies. The rate uses the backend's own token count, never n. Every
// request gets a different prompt (`variant` leads and rotates the words): backends that
// reuse a cached prompt prefix (llama-cpp-python does) would otherwise re-evaluate only the
// last token and report an impossible prefill speed.
std::string prompt_of_about(int n, int variant) {
    static const char* words[] = {"the", "cat", "sat", "on", "a",  "mat", "and",
                                  "the", "dog", "ran", "to", "it", "when"};
    constexpr int n_words = 13;
    std::string s = std::to_string(variant);
    for (int i = 1; i < n; ++i) s.append(" ").append(words[(i + variant) % n_words]);
    return s;
}

// Registry name of a backend; a name the registry does not know (a test's fake) as it is.
std::string canonical_name(const std::string& backend) {
    try {
        return backends::find_backend(backend).name;
    } catch (const usage_error&) {
        return backend;
    }
}

bool is_http_server(const std::string& backend, const backends::backend_settings& s) {
    const std::string name = canonical_name(backend);
    if (name == "native" || name == "transformers" || name == "llama_cpp_python" ||
        name == "onnxruntime_genai")
        return false;
    return name != "llama_cpp" || !s.base_url.empty();
}

// Other backends: one request per repetition, the rate from what the backend itself reports
// (its prompt / generation times), since client-side timings include HTTP and queueing.
class backend_micro {
  public:
    backend_micro(
        const micro_plan& plan,
        const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create)
        : plan_(plan), create_(create) {}

    void run(const micro_case& c, micro_result& r, int n_reps) {
        const std::string unsupported =
            fmt::format("micro mode for backend {} is not supported: ", c.backend);
        if (c.n_depth > 0)
            throw error(
                unsupported +
                "a context depth (-d) needs direct access to the KV cache, which only native has");
        backends::backend_settings s = plan_.settings;
        s.model = c.model;
        if (auto it = plan_.served_model.find(c.backend); it != plan_.served_model.end())
            s.model = it->second;
        if (is_http_server(c.backend, s)) {
            if (plan_.threads_given || plan_.batch_given || plan_.ngl_given)
                throw error(
                    unsupported +
                    "-t/-b/-ngl are set when a server starts, not per request; leave them out "
                    "(the result then shows 0 = server default)");
            r.n_threads = r.n_batch = r.n_gpu_layers = 0;
        } else {
            s.n_threads = c.n_threads;
            s.n_batch = c.n_batch;
            s.n_gpu_layers = c.n_gpu_layers;
        }
        backends::backend& b = backend_for(c.backend, s);
        backends::generation_request req;
        req.n_predict = std::max(c.n_gen, 1);
        req.temperature = 0.0f;
        req.seed = plan_.seed;
        for (int i = 0; i <= n_reps; ++i) {
            req.prompt = prompt_of_about(std::max(c.n_prompt, 1), n_requests_++);
            auto res = b.generate(req, {});
            const auto& st = res.stats;
            double rate = 0;
            if (c.n_gen == 0) {
                if (!st.backend_prompt_ms || st.n_prompt_tokens <= 0 || *st.backend_prompt_ms <= 0)
                    throw error(unsupported +
                                "it does not report its prompt size and prompt processing time");
                rate = 1000.0 * static_cast<double>(st.n_prompt_tokens) / *st.backend_prompt_ms;
            } else if (c.n_prompt == 0) {
                // The server's own figure (as the server computes it; none for fewer than 2
                // tokens), not edgellm's clock on the stream: micro mode times the engine alone.
                if (!st.server_decode_tokens_per_s) throw error(unsupported + "it does not report its generation time");
                rate = *st.server_decode_tokens_per_s;
            } else {
                if (!st.backend_prompt_ms || !st.backend_decode_ms || st.n_prompt_tokens <= 0)
                    throw error(unsupported + "it does not report its prompt and generation times");
                const double ms = *st.backend_prompt_ms + *st.backend_decode_ms;
                if (ms <= 0) throw error(unsupported + "it reported zero processing time");
                rate = 1000.0 * static_cast<double>(st.n_prompt_tokens + st.n_gen_tokens) / ms;
            }
            if (i > 0) r.tokens_per_s.push_back(rate);  // the first request is the warm-up
        }
    }

  private:
    backends::backend& backend_for(const std::string& name, const backends::backend_settings& s) {
        auto key = fmt::format("{}\n{}\n{}\n{}\n{}", name, s.model, s.n_threads, s.n_batch,
                               s.n_gpu_layers);
        if (key_ == key && backend_) return *backend_;
        if (backend_) backend_->unload();
        backend_.reset();
        key_.clear();
        auto b = create_ ? create_(name) : backends::create_backend(name);
        auto avail = b->check_available(s);
        if (!avail.available)
            throw error(fmt::format("{} is unavailable: {}{}", name, avail.reason,
                                    avail.hint.empty() ? "" : " (" + avail.hint + ")"));
        b->load(s);
        backend_ = std::move(b);
        key_ = key;
        return *backend_;
    }

    const micro_plan& plan_;
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create_;
    std::unique_ptr<backends::backend> backend_;
    std::string key_;
    int n_requests_ = 0;
};

}  // namespace

bench_report run_micro_benchmark(
    const micro_plan& plan, const progress_callback& progress,
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create) {
    const auto cases = expand_micro_cases(plan);
    bench_report report;
    report.created_utc = utc_now_iso8601();
    report.system = detect_system();
    report.build = this_build();
    report.settings.mode = "micro";
    report.settings.backends = plan.backends;
    report.settings.models = plan.models;
    report.settings.n_runs = plan.n_reps;
    report.settings.n_warmup = 1;
    report.settings.seed = plan.seed;
    report.settings.n_threads = plan.n_threads.size() == 1 ? plan.n_threads[0] : 0;
    report.settings.n_ctx = plan.settings.n_ctx;
    report.settings.n_gpu_layers = plan.n_gpu_layers.size() == 1 ? plan.n_gpu_layers[0] : 0;
    report.settings.options = plan.settings.extra;

    native_micro native(plan, plan.seed);
    backend_micro other(plan, create);
    for (size_t i = 0; i < cases.size(); ++i) {
        const micro_case& c = cases[i];
        micro_result r = result_of(c);
        if (progress) {
            progress_event e;
            e.backend = c.backend;
            e.model = c.model;
            e.what = "run";
            e.prompt_id = micro_test_name(r);
            e.n_done = i;
            e.n_total = cases.size();
            progress(e);
        }
        try {
            // Only the registry's native engine is timed directly; a test's fake "native" is
            // another backend like any other.
            if (!create && backends::find_backend(c.backend).name == "native")
                native.run(c, r, plan.n_reps);
            else
                other.run(c, r, plan.n_reps);
        } catch (const std::exception& ex) {
            r.tokens_per_s.clear();
            r.error = ex.what();
            if (progress) {
                progress_event e;
                e.backend = c.backend;
                e.model = c.model;
                e.what = "failed";
                e.message = fmt::format("{}: {}", micro_test_name(r), r.error);
                e.n_done = i + 1;
                e.n_total = cases.size();
                progress(e);
            }
        }
        report.micro.push_back(std::move(r));
    }
    return report;
}

}  // namespace edgellm::bench
