// JSON writer and reader for benchmark reports (schema "edgellm.bench/v1").
#include "bench/report_json.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "bench/sanity.h"
#include "bench/stats.h"
#include "core/error.h"

namespace edgellm::bench {

using nlohmann::json;

namespace {

// JSON has no NaN or infinity; null says "not measured / not defined".
json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json summary_json(const summary& s) {
    return {{"n", s.n},           {"mean", number(s.mean)}, {"std", number(s.std)}, {"min", number(s.min)},
            {"max", number(s.max)}, {"p50", number(s.p50)},   {"p95", number(s.p95)}};
}

json optional_json(const std::optional<double>& v) { return v ? number(*v) : json(nullptr); }

json sample_json(const run_sample& s) {
    json resources = json::array();
    for (const auto& r : s.resources)
        resources.push_back({{"t_ms", r.t_ms},
                             {"rss_bytes", r.rss_bytes},
                             {"cpu_pct", number(r.cpu_pct)},
                             {"gpu_mem_bytes", r.gpu_mem_bytes},
                             {"gpu_util_pct", number(r.gpu_util_pct)},
                             {"power_w", optional_json(r.power_w)}});
    return {{"backend", s.backend},
            {"model", s.model},
            {"prompt_id", s.prompt_id},
            {"run_index", s.run_index},
            {"ttft_ms", number(s.ttft_ms)},
            {"prefill_tokens_per_s", number(s.prefill_tokens_per_s)},
            {"decode_tokens_per_s", number(s.decode_tokens_per_s)},
            {"server_prefill_tokens_per_s", optional_json(s.server_prefill_tokens_per_s)},
            {"server_decode_tokens_per_s", optional_json(s.server_decode_tokens_per_s)},
            {"latency_ms", number(s.latency_ms)},
            {"n_gen_pieces", s.n_gen_pieces},
            {"model_bytes", s.model_bytes},
            {"notes", s.notes},
            {"n_prompt_tokens", s.n_prompt_tokens},
            {"n_gen_tokens", s.n_gen_tokens},
            {"n_gen_tokens_estimated", s.n_gen_tokens_estimated},
            {"output_sample", s.output_sample},
            {"peak_rss_bytes", s.peak_rss_bytes},
            {"gpu_mem_bytes", s.gpu_mem_bytes},
            {"cpu_pct", number(s.cpu_pct)},
            {"gpu_util_pct", number(s.gpu_util_pct)},
            {"energy_j_per_token", optional_json(s.energy_j_per_token)},
            {"draft_acceptance", optional_json(s.draft_acceptance)},
            {"energy_j", optional_json(s.energy_j)},
            {"mean_power_w", optional_json(s.mean_power_w)},
            {"power_source", s.power_source},
            {"monitored_process", s.monitored_process},
            {"load_note", s.load_note},
            {"resources", resources},
            {"error", s.error}};
}

json group_json(const group_summary& g) {
    return {{"backend", g.backend},
            {"model", g.model},
            {"n_runs", g.n_runs},
            {"n_failed", g.n_failed},
            {"ttft_ms", summary_json(g.ttft_ms)},
            {"prefill_tokens_per_s", summary_json(g.prefill_tokens_per_s)},
            {"decode_tokens_per_s", summary_json(g.decode_tokens_per_s)},
            {"latency_ms", summary_json(g.latency_ms)},
            {"n_gen_tokens", summary_json(g.n_gen_tokens)},
            {"peak_rss_bytes", summary_json(g.peak_rss_bytes)},
            {"gpu_mem_bytes", summary_json(g.gpu_mem_bytes)},
            {"cpu_pct", summary_json(g.cpu_pct)},
            {"gpu_util_pct", summary_json(g.gpu_util_pct)},
            {"energy_j_per_token", summary_json(g.energy_j_per_token)},
            {"draft_acceptance", summary_json(g.draft_acceptance)},
            {"server_prefill_tokens_per_s", summary_json(g.server_prefill_tokens_per_s)},
            {"server_decode_tokens_per_s", summary_json(g.server_decode_tokens_per_s)},
            {"invalid", g.invalid},
            {"warnings", g.warnings}};
}

// Field access that reports the JSON path of what is wrong.
class reader {
public:
    reader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
        if (!j_.is_object()) throw error(fmt::format("bench report: {} must be an object", path_));
    }
    const json& at(const char* key) const {
        auto it = j_.find(key);
        if (it == j_.end()) throw error(fmt::format("bench report: missing field {}.{}", path_, key));
        return *it;
    }
    bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
    std::string str(const char* key) const {
        const json& v = at(key);
        if (!v.is_string()) throw wrong(key, "a string");
        return v.get<std::string>();
    }
    std::string str_or(const char* key, const std::string& fallback) const { return has(key) ? str(key) : fallback; }
    double num(const char* key) const {
        const json& v = at(key);
        if (v.is_null()) return std::nan("");
        if (!v.is_number()) throw wrong(key, "a number");
        return v.get<double>();
    }
    double num_or(const char* key, double fallback) const { return j_.contains(key) ? num(key) : fallback; }
    std::optional<double> opt(const char* key) const {
        if (!has(key)) return std::nullopt;
        return num(key);
    }
    template <class T>
    T integer(const char* key) const {
        const json& v = at(key);
        if (!v.is_number_integer()) throw wrong(key, "an integer");
        if (std::is_unsigned_v<T> && !v.is_number_unsigned()) throw wrong(key, "a non-negative integer");
        return v.get<T>();
    }
    template <class T>
    T integer_or(const char* key, T fallback) const {
        return j_.contains(key) ? integer<T>(key) : fallback;
    }
    bool boolean_or(const char* key, bool fallback) const {
        if (!j_.contains(key)) return fallback;
        if (!j_.at(key).is_boolean()) throw wrong(key, "true or false");
        return j_.at(key).get<bool>();
    }
    const json& array(const char* key) const {
        const json& v = at(key);
        if (!v.is_array()) throw wrong(key, "an array");
        return v;
    }
    std::string path(const char* key) const { return path_ + "." + key; }

private:
    error wrong(const char* key, const char* what) const {
        return error(fmt::format("bench report: {}.{} must be {}", path_, key, what));
    }
    const json& j_;
    std::string path_;
};

std::vector<double> numbers(const json& arr, const std::string& path) {
    std::vector<double> out;
    for (size_t i = 0; i < arr.size(); ++i) {
        if (!arr[i].is_number()) throw error(fmt::format("bench report: {}[{}] must be a number", path, i));
        out.push_back(arr[i].get<double>());
    }
    return out;
}

std::vector<std::string> strings(const json& arr, const std::string& path) {
    std::vector<std::string> out;
    for (size_t i = 0; i < arr.size(); ++i) {
        if (!arr[i].is_string()) throw error(fmt::format("bench report: {}[{}] must be a string", path, i));
        out.push_back(arr[i].get<std::string>());
    }
    return out;
}

run_sample sample_from(const reader& r) {
    run_sample s;
    s.backend = r.str("backend");
    s.model = r.str("model");
    s.prompt_id = r.str("prompt_id");
    s.run_index = r.integer<int>("run_index");
    s.ttft_ms = r.num("ttft_ms");
    s.prefill_tokens_per_s = r.num("prefill_tokens_per_s");
    s.decode_tokens_per_s = r.num("decode_tokens_per_s");
    s.latency_ms = r.num("latency_ms");
    s.n_prompt_tokens = r.integer<int>("n_prompt_tokens");
    s.n_gen_tokens = r.integer<int>("n_gen_tokens");
    s.output_sample = r.str_or("output_sample", "");
    s.peak_rss_bytes = r.integer_or<uint64_t>("peak_rss_bytes", 0);
    s.gpu_mem_bytes = r.integer_or<uint64_t>("gpu_mem_bytes", 0);
    s.cpu_pct = r.num_or("cpu_pct", std::nan(""));
    s.gpu_util_pct = r.num_or("gpu_util_pct", std::nan(""));
    s.energy_j_per_token = r.opt("energy_j_per_token");
    s.draft_acceptance = r.opt("draft_acceptance");
    s.energy_j = r.opt("energy_j");
    s.mean_power_w = r.opt("mean_power_w");
    s.power_source = r.str_or("power_source", "");
    s.monitored_process = r.str_or("monitored_process", "");
    s.load_note = r.str_or("load_note", "");
    s.n_gen_tokens_estimated = r.boolean_or("n_gen_tokens_estimated", false);
    s.server_prefill_tokens_per_s = r.opt("server_prefill_tokens_per_s");
    s.server_decode_tokens_per_s = r.opt("server_decode_tokens_per_s");
    s.n_gen_pieces = r.integer_or<int>("n_gen_pieces", -1);
    s.model_bytes = r.integer_or<uint64_t>("model_bytes", 0);
    if (r.has("notes")) {
        const json& arr = r.array("notes");
        for (size_t i = 0; i < arr.size(); ++i) {
            if (!arr[i].is_string()) throw error(fmt::format("bench report: {}[{}] must be a string", r.path("notes"), i));
            s.notes.push_back(arr[i].get<std::string>());
        }
    }
    s.error = r.str_or("error", "");
    if (r.has("resources")) {
        const json& arr = r.array("resources");
        for (size_t i = 0; i < arr.size(); ++i) {
            reader p(arr[i], fmt::format("{}[{}]", r.path("resources"), i));
            resource_point pt;
            pt.t_ms = p.num("t_ms");
            pt.rss_bytes = p.integer_or<uint64_t>("rss_bytes", 0);
            pt.cpu_pct = p.num_or("cpu_pct", 0.0);
            pt.gpu_mem_bytes = p.integer_or<uint64_t>("gpu_mem_bytes", 0);
            pt.gpu_util_pct = p.num_or("gpu_util_pct", std::nan(""));
            pt.power_w = p.opt("power_w");
            s.resources.push_back(pt);
        }
    }
    return s;
}

}  // namespace

json report_to_json(const bench_report& report) {
    const auto& sys = report.system;
    const auto& b = report.build;
    const auto& st = report.settings;
    json j;
    j["schema"] = report.schema;
    j["created_utc"] = report.created_utc;
    j["system"] = {{"device", sys.device},
                   {"cpu", sys.cpu},
                   {"n_cpu_cores", sys.n_cpu_cores},
                   {"gpu", sys.gpu},
                   {"gpu_mem_total_bytes", sys.gpu_mem_total_bytes},
                   {"ram_total_bytes", sys.ram_total_bytes},
                   {"mem_bandwidth_bytes_per_s", number(sys.mem_bandwidth_bytes_per_s > 0 ? sys.mem_bandwidth_bytes_per_s : std::nan(""))},
                   {"os", sys.os}};
    j["build"] = {{"version", b.version},
                  {"commit", b.commit},
                  {"compiler", b.compiler},
                  {"build_type", b.build_type},
                  {"cuda", b.cuda}, {"cuda_offload", b.cuda_offload}};
    j["settings"] = {{"mode", st.mode},         {"backends", st.backends},   {"models", st.models},
                     {"prompt_set", st.prompt_set}, {"n_runs", st.n_runs},     {"n_warmup", st.n_warmup},
                     {"n_predict", st.n_predict}, {"n_threads", st.n_threads}, {"n_ctx", st.n_ctx},
                     {"n_gpu_layers", st.n_gpu_layers}, {"seed", st.seed},     {"temperature", st.temperature},
                     {"options", st.options}};
    j["samples"] = json::array();
    for (const auto& s : report.samples) j["samples"].push_back(sample_json(s));
    j["micro"] = json::array();
    for (const auto& m : report.micro) {
        j["micro"].push_back({{"backend", m.backend},
                              {"model", m.model},
                              {"test", micro_test_name(m)},
                              {"n_prompt", m.n_prompt},
                              {"n_gen", m.n_gen},
                              {"n_threads", m.n_threads},
                              {"n_batch", m.n_batch},
                              {"n_gpu_layers", m.n_gpu_layers},
                              {"n_depth", m.n_depth},
                              {"tokens_per_s", m.tokens_per_s},
                              {"summary", summary_json(summarize(m))},
                              {"error", m.error}});
    }
    j["sweeps"] = json::array();
    for (const auto& p : report.sweeps) {
        j["sweeps"].push_back({{"backend", p.backend},
                               {"model", p.model},
                               {"kind", p.kind},
                               {"n_parallel", p.n_parallel},
                               {"latency_ms", p.latency_ms},
                               {"wall_ms", number(p.wall_ms)},
                               {"n_gen_tokens", p.n_gen_tokens},
                               {"aggregate_tokens_per_s", number(aggregate_tokens_per_s(p))},
                               {"latency_summary", summary_json(summarize(p))},
                               {"error", p.error}});
    }
    auto groups = checked_groups(report);
    json jg = json::array();
    for (const auto& g : groups) jg.push_back(group_json(g));
    json je = json::array();
    for (const auto& e : standard_extremes(groups))
        je.push_back({{"metric", e.metric},
                      {"best", e.best},
                      {"worst", e.worst},
                      {"best_value", number(e.best_value)},
                      {"worst_value", number(e.worst_value)},
                      {"ratio", number(e.ratio)}});
    j["summary"] = {{"groups", jg}, {"extremes", je}};
    return j;
}

std::string render_json(const bench_report& report) {
    // Replace invalid UTF-8 (a truncated output sample) rather than throw while reporting.
    return report_to_json(report).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

bench_report report_from_json(const json& j) {
    reader top(j, "$");
    bench_report r;
    r.schema = top.str("schema");
    if (r.schema != schema_version)
        throw error(fmt::format("bench report: schema is '{}', this edgellm reads '{}'", r.schema, schema_version));
    r.created_utc = top.str_or("created_utc", "");
    if (top.has("system")) {
        reader s(top.at("system"), "$.system");
        r.system.device = s.str_or("device", "");
        r.system.cpu = s.str_or("cpu", "");
        r.system.n_cpu_cores = s.integer_or<int>("n_cpu_cores", 0);
        r.system.gpu = s.str_or("gpu", "");
        r.system.gpu_mem_total_bytes = s.integer_or<uint64_t>("gpu_mem_total_bytes", 0);
        r.system.ram_total_bytes = s.integer_or<uint64_t>("ram_total_bytes", 0);
        r.system.mem_bandwidth_bytes_per_s = s.num_or("mem_bandwidth_bytes_per_s", 0.0);
        r.system.os = s.str_or("os", "");
    }
    if (top.has("build")) {
        reader b(top.at("build"), "$.build");
        r.build.version = b.str_or("version", "");
        r.build.commit = b.str_or("commit", "");
        r.build.compiler = b.str_or("compiler", "");
        r.build.build_type = b.str_or("build_type", "");
        r.build.cuda = b.boolean_or("cuda", false);
        r.build.cuda_offload = b.boolean_or("cuda_offload", false);
    }
    if (top.has("settings")) {
        reader s(top.at("settings"), "$.settings");
        auto& st = r.settings;
        st.mode = s.str_or("mode", "prompts");
        if (s.has("backends")) st.backends = strings(s.array("backends"), s.path("backends"));
        if (s.has("models")) st.models = strings(s.array("models"), s.path("models"));
        st.prompt_set = s.str_or("prompt_set", "");
        st.n_runs = s.integer_or<int>("n_runs", 0);
        st.n_warmup = s.integer_or<int>("n_warmup", 0);
        st.n_predict = s.integer_or<int>("n_predict", 0);
        st.n_threads = s.integer_or<int>("n_threads", 0);
        st.n_ctx = s.integer_or<int>("n_ctx", 0);
        st.n_gpu_layers = s.integer_or<int>("n_gpu_layers", 0);
        st.seed = s.integer_or<uint64_t>("seed", 0);
        st.temperature = s.num_or("temperature", 0.0);
        if (s.has("options")) {
            const json& o = s.at("options");
            if (!o.is_object()) throw error(fmt::format("bench report: {} must be an object", s.path("options")));
            for (const auto& [k, v] : o.items()) {
                if (!v.is_string()) throw error(fmt::format("bench report: {}.{} must be a string", s.path("options"), k));
                st.options[k] = v.get<std::string>();
            }
        }
    }
    const json& samples = top.array("samples");
    for (size_t i = 0; i < samples.size(); ++i)
        r.samples.push_back(sample_from(reader(samples[i], fmt::format("$.samples[{}]", i))));
    if (top.has("micro")) {
        const json& arr = top.array("micro");
        for (size_t i = 0; i < arr.size(); ++i) {
            reader m(arr[i], fmt::format("$.micro[{}]", i));
            micro_result x;
            x.backend = m.str("backend");
            x.model = m.str("model");
            x.n_prompt = m.integer<int>("n_prompt");
            x.n_gen = m.integer<int>("n_gen");
            x.n_threads = m.integer_or<int>("n_threads", 0);
            x.n_batch = m.integer_or<int>("n_batch", 0);
            x.n_gpu_layers = m.integer_or<int>("n_gpu_layers", 0);
            x.n_depth = m.integer_or<int>("n_depth", 0);
            x.tokens_per_s = numbers(m.array("tokens_per_s"), m.path("tokens_per_s"));
            x.error = m.str_or("error", "");
            r.micro.push_back(std::move(x));
        }
    }
    if (top.has("sweeps")) {
        const json& arr = top.array("sweeps");
        for (size_t i = 0; i < arr.size(); ++i) {
            reader p(arr[i], fmt::format("$.sweeps[{}]", i));
            sweep_point x;
            x.backend = p.str("backend");
            x.model = p.str("model");
            x.kind = p.str("kind");
            x.n_parallel = p.integer<int>("n_parallel");
            x.latency_ms = numbers(p.array("latency_ms"), p.path("latency_ms"));
            x.wall_ms = p.num("wall_ms");
            x.n_gen_tokens = p.integer<int64_t>("n_gen_tokens");
            x.error = p.str_or("error", "");
            r.sweeps.push_back(std::move(x));
        }
    }
    return r;
}

bench_report load_report(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(fmt::format("cannot open bench report '{}'", path));
    std::stringstream ss;
    ss << in.rdbuf();
    json j;
    try {
        j = json::parse(ss.str());
    } catch (const json::parse_error& e) {
        throw error(fmt::format("bench report '{}' is not valid JSON: {}", path, e.what()));
    }
    try {
        return report_from_json(j);
    } catch (const error& e) {
        throw error(fmt::format("{} (in '{}')", e.what(), path));
    }
}

}  // namespace edgellm::bench
