// edgellm quality: quantize each type (cached in out_dir), then measure every model in a child
// process of edgellm (perplexity + KL divergence, bench micro tests) and collect the table.
#include "quality/quality.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/result.h"
#include "core/error.h"
#include "core/process.h"
#include "gguf/gguf.h"
#include "quality/quantize.h"
#include "quant/mix.h"

namespace edgellm::quality {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct child_result {
    int status = -1;
    std::string out, err;
    uint64_t peak_rss_bytes = 0;
};

// Runs argv to completion: stdout captured, stderr to a file (read back), peak RSS from wait4.
child_result run_child(const std::vector<std::string>& argv, const std::string& err_path) {
    int fds[2];
    if (pipe(fds) != 0) throw error(std::string("pipe: ") + std::strerror(errno));
    const pid_t pid = fork();
    if (pid < 0) throw error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        const int e = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (e >= 0) dup2(e, STDERR_FILENO);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    close(fds[1]);
    child_result r;
    char buf[65536];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        r.out.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    int status = 0;
    rusage ru{};
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {}
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.peak_rss_bytes = static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux: KiB
    std::ifstream in(err_path);
    std::stringstream ss;
    ss << in.rdbuf();
    r.err = ss.str();
    std::error_code ec;
    fs::remove(err_path, ec);
    return r;
}

// The child's own "error: ..." line, or its last stderr line.
std::string child_error(const child_result& c) {
    std::istringstream in(c.err);
    std::string line, last, err;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        last = line;
        if (line.rfind("error:", 0) == 0) err = line.substr(6);
    }
    if (!err.empty()) return fmt::format("{}", err.substr(err.find_first_not_of(' ')));
    return last.empty() ? fmt::format("exit status {}", c.status) : last;
}

json run_json(const std::vector<std::string>& argv, const std::string& err_path, const std::string& what) {
    const child_result c = run_child(argv, err_path);
    if (c.status != 0) throw usage_error(fmt::format("{}: {}", what, child_error(c)));
    try {
        return json::parse(c.out);
    } catch (const std::exception& e) {
        throw error(fmt::format("{}: unreadable JSON from the child run ({})", what, e.what()));
    }
}

// The type most of the file's weight bytes are in, and the parameter count.
std::pair<std::string, uint64_t> main_type(const std::string& path) {
    const auto f = gguf::file::open(path);
    std::map<ggml_type, uint64_t> bytes;
    uint64_t n = 0;
    for (const auto& t : f.tensors()) {
        bytes[t.type] += t.size_bytes;
        n += static_cast<uint64_t>(t.n_elements());
    }
    ggml_type best = ggml_type::f32;
    uint64_t most = 0;
    for (const auto& [t, b] : bytes)
        if (b > most) most = b, best = t;
    return {std::string(type_name(best)), n};
}

bool cached_quant_ok(const std::string& path, const std::string& base, uint32_t file_type) {
    std::error_code ec;
    if (!fs::exists(path, ec) || fs::last_write_time(path, ec) < fs::last_write_time(base, ec)) return false;
    try {
        const auto f = gguf::file::open(path);
        return f.get_u64_opt("general.file_type").value_or(~0ull) == file_type;
    } catch (const std::exception&) {
        return false;  // a damaged cache file is rebuilt
    }
}

}  // namespace

quality_report measure_quality(const quality_options& in) {
    quality_options o = in;
    auto log = [&](const std::string& s) {
        if (o.log) o.log(s);
    };
    if (o.types.empty()) throw usage_error("no --types given");
    for (const auto& t : o.types) find_type_mix(t);
    if (o.text_file.empty()) throw usage_error("no text file given (-f FILE): perplexity needs one");
    if (!fs::is_regular_file(o.text_file)) throw usage_error("text file not found: " + o.text_file);
    if (!fs::is_regular_file(o.base)) throw usage_error("model not found: " + o.base);
    if (o.exe.empty()) o.exe = self_exe_dir() + "/edgellm";
    fs::create_directories(o.out_dir);

    quality_report r;
    r.opts = o;
    r.created_utc = bench::utc_now_iso8601();
    const auto base_info = main_type(o.base);
    const std::string base_type = base_info.first;
    const uint64_t n_params = base_info.second;
    r.base_type = base_type;
    r.n_params = n_params;
    r.base_quantized = base_type != "F32" && base_type != "F16" && base_type != "BF16";
    if (r.base_quantized && !o.allow_requantize)
        throw usage_error(fmt::format("{} is already quantized ({}): measure quality from the F32/F16/BF16 model, "
                                      "or pass --allow-requantize to measure each type against this quantized base",
                                      o.base, base_type));
    if (r.base_quantized)
        log(fmt::format("warning: the base {} is itself quantized ({}): each type is re-quantized from it, so the "
                        "figures are relative to {}, not to the F16 original, and understate the real loss",
                        o.base, base_type, base_type));
    const std::string stem = fs::path(o.base).stem().string();
    const std::string kld = (fs::path(o.out_dir) / (stem + ".kld")).string();
    const std::string err_path = (fs::path(o.out_dir) / ".child-stderr.txt").string();
    const std::string threads = std::to_string(o.n_threads > 0 ? o.n_threads : static_cast<int>(std::thread::hardware_concurrency()));

    std::vector<std::string> ppl_args = {"perplexity", "-f", o.text_file, "-c", std::to_string(o.n_ctx), "-b",
                                         std::to_string(o.n_batch), "-t", threads, "--json"};
    if (o.n_chunks > 0) ppl_args.insert(ppl_args.end(), {"--chunks", std::to_string(o.n_chunks)});

    auto measure = [&](quality_row& row) {
        std::vector<std::string> a = {o.exe, "perplexity", "-m", row.path};
        a.insert(a.end(), ppl_args.begin() + 1, ppl_args.end());
        if (row.is_base)
            a.insert(a.end(), {"--kl-divergence-base", kld});
        else
            a.insert(a.end(), {"--kl-divergence", kld});
        log(fmt::format("{}: perplexity{}", row.type, row.is_base ? " (saving the base distributions)" : " and KL divergence"));
        const json p = run_json(a, err_path, row.type + " perplexity");
        row.ppl = p.at("ppl").get<double>();
        row.ppl_stderr = p.at("ppl_stderr").get<double>();
        r.n_scored = p.at("n_scored").get<int64_t>();
        if (p.contains("kl_divergence")) {
            const json& k = p.at("kl_divergence");
            row.kld_mean = k.at("kld_mean").get<double>();
            row.kld_p99 = k.at("kld_p99").get<double>();
            row.top1_pct = 100.0 * k.at("top1_agree").get<double>();
        }
        log(fmt::format("{}: speed (pp{}, tg{}, {} runs)", row.type, o.n_prompt, o.n_gen, o.runs));
        const std::string bench_json = (fs::path(o.out_dir) / ".bench.json").string();
        const child_result c =
            run_child({o.exe, "bench", "-m", row.path, "-p", std::to_string(o.n_prompt), "-n", std::to_string(o.n_gen),
                       "-r", std::to_string(o.runs), "-t", threads, "-q", "--json", bench_json},
                      err_path);
        if (c.status != 0) throw usage_error(fmt::format("{} bench: {}", row.type, child_error(c)));
        row.peak_rss_bytes = c.peak_rss_bytes;
        std::ifstream bj(bench_json);
        const json b = json::parse(bj);
        for (const auto& m : b.at("micro")) {
            if (!m.value("error", std::string()).empty())
                throw error(fmt::format("{} bench: {}", row.type, m.at("error").get<std::string>()));
            const double mean = m.at("summary").at("mean").get<double>();
            if (m.at("n_prompt").get<int>() > 0) row.prefill_tps = mean;
            if (m.at("n_gen").get<int>() > 0) row.decode_tps = mean;
        }
        std::error_code ec;
        fs::remove(bench_json, ec);
        row.file_bytes = fs::file_size(row.path);
        row.bits_per_weight = n_params ? 8.0 * static_cast<double>(row.file_bytes) / static_cast<double>(n_params) : 0;
    };

    quality_row base;
    base.type = "base (" + base_type + ")";
    base.path = o.base;
    base.is_base = true;
    measure(base);  // first: a short text or a bad model fails here, before any quantization
    r.rows.push_back(base);

    for (const auto& t : o.types) {
        const type_mix& mix = find_type_mix(t);
        quality_row row;
        row.type = mix.name;
        row.path = (fs::path(o.out_dir) / (stem + "-" + mix.name + ".gguf")).string();
        if (cached_quant_ok(row.path, o.base, mix.file_type)) {
            row.cached = true;
            log(fmt::format("{}: using {} (already quantized)", mix.name, row.path));
        } else {
            log(fmt::format("{}: quantizing to {}", mix.name, row.path));
            quantize_options qo;
            qo.type = mix.name;
            qo.allow_requantize = r.base_quantized;
            qo.n_threads = o.n_threads;
            row.quantize_s = quantize_model(o.base, row.path, qo).seconds;
        }
        measure(row);
        row.dppl_pct = (row.ppl / base.ppl - 1.0) * 100.0;
        r.rows.push_back(row);
    }
    return r;
}

}  // namespace edgellm::quality
