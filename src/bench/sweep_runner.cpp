// Sweep runner (see sweep_runner.h): native batched sequences and parallel server requests.
#include "bench/sweep_runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "core/error.h"
#include "core/timing.h"
#include "engine/batch_generate.h"
#include "engine/engine.h"
#include "engine/text.h"

namespace edgellm::bench {
namespace {

using backend_factory = std::function<std::unique_ptr<backends::backend>(const std::string&)>;

bool is_http_server(const std::string& name, const backends::backend_settings& s) {
    if (name == "native" || name == "transformers" || name == "llama_cpp_python" ||
        name == "onnxruntime_genai")
        return false;
    return name != "llama_cpp" || !s.base_url.empty();
}

// Native: one engine with a KV sequence per batch slot; each round decodes `size` copies of
// the prompt together, ignoring EOS so that every sequence does the same work.
void run_native_batch(const sweep_plan& plan, const std::string& model,
                      std::vector<sweep_point>& points,
                      const std::function<void(int, int)>& on_round) {
    engine::engine_params ep;
    ep.model_path = model;
    ep.n_seq = *std::max_element(plan.sizes.begin(), plan.sizes.end());
    if (plan.settings.n_threads > 0) ep.n_threads = plan.settings.n_threads;
    if (plan.settings.n_batch > 0) ep.n_batch = plan.settings.n_batch;
    ep.n_gpu_layers = std::max(0, plan.settings.n_gpu_layers);
    ep.deterministic = plan.settings.extra.count("deterministic") > 0;  // > 0 is refused: the engine is CPU-only
    // The prompt's length is known only once the tokenizer is loaded: the check before loading
    // counts the generated tokens, the session's own check below the exact context.
    auto ctx_for = [&plan](int64_t n_prompt, const model::model_hparams& hp) {
        return plan.settings.n_ctx > 0 ? plan.settings.n_ctx
                                       : std::min<int64_t>(hp.n_ctx_train, n_prompt + plan.n_predict + 1);
    };
    engine::engine_params lp = ep;
    auto lm = engine::load_model_for(
        lp, [&](engine::engine_params& e, const model::model_hparams& hp) { e.n_ctx = ctx_for(0, hp); });
    engine::text_codec codec(lm);
    if (!codec.has_tokenizer())
        throw error("the model has no usable tokenizer, so the sweep's prompt cannot be encoded");
    const std::vector<int32_t> prompt = codec.encode_prompt(plan.prompt.text);
    ep.n_ctx = ctx_for(static_cast<int64_t>(prompt.size()), lm->hparams());
    engine::engine e(lm, ep);
    engine::generation_params gp;
    gp.n_predict = plan.n_predict;
    gp.ignore_eos = true;
    gp.sampling.temperature = static_cast<float>(plan.temperature);
    gp.sampling.seed = plan.seed;

    std::vector<std::vector<int32_t>> prompts(1, prompt);
    engine::generate_batch(e, prompts, gp);  // warm-up
    for (auto& p : points) {
        prompts.assign(static_cast<size_t>(p.n_parallel), prompt);
        for (int r = 0; r < plan.n_runs; ++r) {
            on_round(p.n_parallel, r);
            auto st = engine::generate_batch(e, prompts, gp);
            for (const auto& s : st.sequences) p.latency_ms.push_back(s.latency_ms);
            p.wall_ms += st.wall_ms;
            p.n_gen_tokens += st.n_gen;
        }
    }
}

// Servers: `size` clients, each in its own thread, send the same request at once.
void run_concurrency(const sweep_plan& plan, const std::string& backend,
                     const backends::backend_settings& s, const backend_factory& create,
                     std::vector<sweep_point>& points,
                     const std::function<void(int, int)>& on_round) {
    const int n_max = *std::max_element(plan.sizes.begin(), plan.sizes.end());
    std::vector<std::unique_ptr<backends::backend>> clients;
    for (int i = 0; i < n_max; ++i) {
        auto b = create ? create(backend) : backends::create_backend(backend);
        if (i == 0) {
            auto avail = b->check_available(s);
            if (!avail.available)
                throw error(fmt::format("{} is unavailable: {}{}", backend, avail.reason,
                                        avail.hint.empty() ? "" : " (" + avail.hint + ")"));
        }
        b->load(s);
        clients.push_back(std::move(b));
    }
    backends::generation_request req;
    req.prompt = plan.prompt.text;
    req.n_predict = plan.n_predict;
    req.temperature = static_cast<float>(plan.temperature);
    req.seed = plan.seed;
    clients[0]->generate(req, {});  // warm-up

    for (auto& p : points) {
        const size_t n = static_cast<size_t>(p.n_parallel);
        for (int r = 0; r < plan.n_runs; ++r) {
            on_round(p.n_parallel, r);
            std::vector<backends::generation_result> results(n);
            std::vector<std::string> errors(n);
            std::atomic<size_t> ready{0};
            std::atomic<bool> go{false};
            std::vector<std::thread> threads;
            double t0 = 0;
            for (size_t i = 0; i < n; ++i)
                threads.emplace_back([&, i] {
                    ++ready;
                    while (!go.load()) std::this_thread::yield();
                    try {
                        results[i] = clients[i]->generate(req, {});
                    } catch (const std::exception& ex) {
                        errors[i] = ex.what();
                    }
                });
            while (ready.load() < n) std::this_thread::yield();
            t0 = now_ms();
            go = true;
            for (auto& t : threads) t.join();
            p.wall_ms += now_ms() - t0;
            for (size_t i = 0; i < n; ++i) {
                if (!errors[i].empty())
                    throw error(fmt::format("request {} of {} failed: {}", i + 1, n, errors[i]));
                p.latency_ms.push_back(results[i].stats.total_ms);
                p.n_gen_tokens += results[i].stats.n_gen_tokens;
            }
        }
    }
}

}  // namespace

bench_report run_sweep_benchmark(const sweep_plan& plan, const progress_callback& progress,
                                 const backend_factory& create) {
    if (plan.kind != "batch" && plan.kind != "concurrency")
        throw usage_error(
            fmt::format("sweep kind must be batch or concurrency, got '{}'", plan.kind));
    if (plan.sizes.empty())
        throw usage_error("the sweep has no sizes (--batch-sizes 1,2,4 / --concurrency 1,2,4)");
    for (int n : plan.sizes)
        if (n <= 0) throw usage_error(fmt::format("sweep sizes must be positive, got {}", n));
    if (plan.models.empty()) throw usage_error("sweep: no model given (-m MODEL)");
    if (plan.n_predict <= 0)
        throw usage_error(fmt::format("-n must be positive, got {}", plan.n_predict));
    if (plan.n_runs <= 0)
        throw usage_error(fmt::format("--runs must be positive, got {}", plan.n_runs));

    bench_report report;
    report.created_utc = utc_now_iso8601();
    report.system = detect_system();
    report.build = this_build();
    report.settings.mode = "sweep";
    report.settings.backends = plan.backends;
    report.settings.models = plan.models;
    report.settings.prompt_set = plan.prompt.id;
    report.settings.n_runs = plan.n_runs;
    report.settings.n_warmup = 1;
    report.settings.n_predict = plan.n_predict;
    report.settings.n_threads = plan.settings.n_threads;
    report.settings.n_ctx = plan.settings.n_ctx;
    report.settings.n_gpu_layers = plan.settings.n_gpu_layers;
    report.settings.seed = plan.seed;
    report.settings.temperature = plan.temperature;
    report.settings.options = plan.settings.extra;

    const auto combos = backend_model_pairs(plan.backends, plan.models, plan.pair_models);
    const size_t n_total = combos.size() * plan.sizes.size() * static_cast<size_t>(plan.n_runs);
    size_t n_done = 0;
    for (const auto& combo : combos) {
        // Named references, not structured bindings: lambdas below capture them (clang 14).
        const std::string& backend = combo.first;
        const std::string& model = combo.second;
        std::vector<sweep_point> points;
        for (int n : plan.sizes) {
            sweep_point p;
            p.backend = backend;
            p.model = model;
            p.kind = plan.kind;
            p.n_parallel = n;
            points.push_back(std::move(p));
        }
        auto on_round = [&](int size, int run) {
            if (!progress) return;
            progress_event e;
            e.backend = backend;
            e.model = model;
            e.what = "run";
            e.prompt_id = fmt::format("{} {}", plan.kind, size);
            e.run_index = run;
            e.n_done = n_done++;
            e.n_total = n_total;
            progress(e);
        };
        try {
            backends::backend_settings s = plan.settings;
            s.model = model;
            if (auto it = plan.served_model.find(backend); it != plan.served_model.end())
                s.model = it->second;
            const std::string name = create ? backend : backends::find_backend(backend).name;
            if (plan.kind == "batch") {
                if (name != "native" || create)
                    throw error(fmt::format(
                        "batch sweeps for backend {} are not supported: only the native engine "
                        "decodes several sequences in one forward pass here; use --concurrency "
                        "for server backends",
                        backend));
                run_native_batch(plan, s.model, points, on_round);
            } else {
                if (!create && !is_http_server(name, s))
                    throw error(fmt::format(
                        "concurrency sweeps for backend {} are not supported: it is not a "
                        "shared server{}",
                        backend,
                        name == "native" ? " (use --batch-sizes for batched native sequences, or run `edgellm "
                                           "serve` and sweep it with --backends openai --url http://HOST:PORT/v1)"
                        : name == "llama_cpp" ? " unless --url names a running llama-server"
                                              : ""));
                run_concurrency(plan, backend, s, create, points, on_round);
            }
        } catch (const std::exception& ex) {
            // Points measured before the failure keep their data; the rest carry the error.
            for (auto& p : points)
                if (p.latency_ms.size() < static_cast<size_t>(p.n_parallel * plan.n_runs)) {
                    p.latency_ms.clear();
                    p.wall_ms = 0;
                    p.n_gen_tokens = 0;
                    p.error = ex.what();
                }
            if (progress) {
                progress_event e;
                e.backend = backend;
                e.model = model;
                e.what = "failed";
                e.message = ex.what();
                progress(e);
            }
        }
        for (auto& p : points) report.sweeps.push_back(std::move(p));
    }
    return report;
}

}  // namespace edgellm::bench
