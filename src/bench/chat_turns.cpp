// The multi-turn chat workload: a growing conversation per run, TTFT per turn.
#include "bench/chat_turns.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "bench/stats.h"
#include "core/error.h"

namespace edgellm::bench {

std::vector<std::string> chat_turn_questions(int n) {
    static const std::vector<std::string> qs = {
        "Tell me about the history of bread making in a few sentences.",
        "What is the difference between sourdough and yeast bread?",
        "How long should I knead dough, and why does kneading matter?",
        "Which flour would you recommend for a crusty loaf?",
        "What temperature should the oven be for baking bread?",
        "How can I tell when a loaf is fully baked?",
        "How should I store bread so that it stays fresh?",
        "Can you suggest a simple recipe for a weekend loaf?",
        "What are common mistakes beginners make when baking bread?",
        "Summarise our conversation in two sentences.",
    };
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(qs[static_cast<size_t>(i) % qs.size()]);
    return out;
}

std::vector<chat_turn_sample> run_chat_turns(const chat_turns_plan& plan, const progress_callback& progress) {
    if (plan.n_turns < 1) throw usage_error(fmt::format("--chat-turns must be at least 1, got {}", plan.n_turns));
    if (plan.n_runs < 1) throw usage_error(fmt::format("--runs must be at least 1, got {}", plan.n_runs));
    if (!plan.served_model.empty() && plan.models.size() != 1)
        throw usage_error("--served-model needs exactly one model");
    const auto pairs = backend_model_pairs(plan.backends, plan.models, plan.pair_models);
    const auto questions = chat_turn_questions(plan.n_turns);
    const size_t n_total = pairs.size() * static_cast<size_t>(plan.n_runs * plan.n_turns);
    size_t n_done = 0;
    std::vector<chat_turn_sample> out;
    for (const auto& pair : pairs) {
        // Named copies, not a structured binding: clang before 16 cannot capture bindings in lambdas.
        const std::string& backend_name = pair.first;
        const std::string& model = pair.second;
        auto fail_all = [&](const std::string& why) {
            chat_turn_sample s;
            s.backend = backend_name;
            s.model = model;
            s.error = why;
            out.push_back(s);
            if (progress) progress({backend_name, model, "failed", "", 0, n_done, n_total, why});
        };
        backends::backend_settings settings = plan.settings;
        settings.model = model;
        if (auto it = plan.served_model.find(backend_name); it != plan.served_model.end()) settings.model = it->second;
        std::unique_ptr<backends::backend> be;
        try {
            be = backends::create_backend(backend_name);
            const auto avail = be->check_available(settings);
            if (!avail.available) {
                fail_all(avail.reason + (avail.hint.empty() ? "" : " (" + avail.hint + ")"));
                continue;
            }
            if (progress) progress({backend_name, model, "loading", "", 0, n_done, n_total, ""});
            be->load(settings);
        } catch (const std::exception& ex) {
            fail_all(ex.what());
            continue;
        }
        for (int run = 0; run < plan.n_runs; ++run) {
            // Each conversation opens with its own system prompt, so no run reuses another's KV.
            std::vector<backends::chat_message> history = {
                {"system", fmt::format("Conversation {}-{}. You are a friendly baker who answers questions about "
                                       "baking bread.",
                                       plan.seed, run + 1)}};
            for (int turn = 0; turn < plan.n_turns; ++turn) {
                history.push_back({"user", questions[static_cast<size_t>(turn)]});
                backends::generation_request req;
                req.messages = history;
                req.n_predict = plan.n_predict;
                req.temperature = static_cast<float>(plan.temperature);
                req.seed = plan.seed;
                chat_turn_sample s;
                s.backend = backend_name;
                s.model = model;
                s.run = run + 1;
                s.turn = turn + 1;
                if (progress)
                    progress({backend_name, model, "run", fmt::format("turn {}", turn + 1), run, n_done, n_total, ""});
                try {
                    const backends::generation_result r = be->generate(req, [](std::string_view) { return true; });
                    s.n_prompt = r.stats.n_prompt_tokens;
                    s.n_gen = r.stats.n_gen_tokens;
                    s.ttft_ms = r.stats.ttft_ms;
                    s.total_ms = r.stats.total_ms;
                    history.push_back({"assistant", r.text});
                } catch (const std::exception& ex) {
                    s.error = ex.what();
                    out.push_back(s);
                    if (progress) progress({backend_name, model, "failed", "", run, n_done, n_total, s.error});
                    break;  // the conversation cannot go on without this answer
                }
                out.push_back(s);
                ++n_done;
            }
        }
        be->unload();
    }
    return out;
}

namespace {
double median(const std::vector<double>& v) { return percentile(v, 50); }
}  // namespace

std::string render_chat_turns(const std::vector<chat_turn_sample>& samples, bool markdown) {
    std::string out;
    std::vector<std::pair<std::string, std::string>> groups;
    for (const auto& s : samples)
        if (std::find(groups.begin(), groups.end(), std::pair{s.backend, s.model}) == groups.end())
            groups.emplace_back(s.backend, s.model);
    for (const auto& [backend, model] : groups) {
        const std::string name = model.empty() ? "(the served model)" : std::filesystem::path(model).filename().string();
        out += markdown ? fmt::format("\n**{} / {}**\n\n| turn | prompt tokens | TTFT ms (median) | runs |\n|---:|---:|---:|---:|\n",
                                      backend, name)
                        : fmt::format("\n{} / {}\n  turn  prompt tokens  TTFT ms (median)  runs\n", backend, name);
        std::map<int, std::vector<double>> ttft;
        std::map<int, int64_t> n_prompt;
        for (const auto& s : samples) {
            if (s.backend != backend || s.model != model) continue;
            if (!s.error.empty()) {
                out += fmt::format("{}  error (run {}, turn {}): {}\n", markdown ? ">" : "", s.run, s.turn, s.error);
                continue;
            }
            ttft[s.turn].push_back(s.ttft_ms);
            n_prompt[s.turn] = std::max(n_prompt[s.turn], s.n_prompt);
        }
        for (const auto& [turn, v] : ttft) {
            const std::string np = n_prompt[turn] >= 0 ? std::to_string(n_prompt[turn]) : "?";
            out += markdown ? fmt::format("| {} | {} | {:.1f} | {} |\n", turn, np, median(v), v.size())
                            : fmt::format("  {:>4}  {:>13}  {:>16.1f}  {:>4}\n", turn, np, median(v), v.size());
        }
        if (ttft.size() >= 2) {
            const double first = median(ttft.begin()->second), last = median(ttft.rbegin()->second);
            if (first > 0)
                out += fmt::format("{}last turn TTFT / first turn TTFT: {:.2f}x\n", markdown ? "\n" : "  ", last / first);
        }
    }
    return out;
}

}  // namespace edgellm::bench
