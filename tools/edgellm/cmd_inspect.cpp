// `edgellm inspect`: what a GGUF file holds — architecture, size, type mix, hyperparameters,
// tokenizer, all metadata and (with --tensors) the tensor table; --json for machines.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "command.h"
#include "store/store.h"
#include "core/error.h"
#include "core/units.h"
#include "gguf/gguf.h"
#include "gguf/gguf_summary.h"

namespace edgellm::cli {
namespace {

struct inspect_flags {
    std::vector<std::string> paths;
    bool tensors = false;
    bool json = false;
    bool full = false;
    size_t max_items = 0;  // 0: the default for the output kind
};

std::string shape_string(const gguf::tensor_info& t) {
    std::string s;
    for (int d = 0; d < t.n_dims; ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
    return s;
}

std::string opt_str(const std::optional<uint64_t>& v) { return v ? std::to_string(*v) : "-"; }

nlohmann::json to_json(const gguf::file& f, const inspect_flags& fl) {
    const auto s = gguf::summarize(f);
    const size_t max_items = fl.full ? 0 : (fl.max_items ? fl.max_items : 16);
    auto opt = [](const std::optional<uint64_t>& v) -> nlohmann::json {
        return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    nlohmann::json mix = nlohmann::json::object();
    for (const auto& [type, n] : s.type_mix) mix[type] = n;
    nlohmann::json j = {
        {"path", f.path()},
        {"file_size_bytes", s.file_size_bytes},
        {"version", f.version()},
        {"alignment", f.alignment()},
        {"data_offset", f.data_offset()},
        {"architecture", s.architecture},
        {"name", s.name},
        {"file_type", s.file_type},
        {"n_params", s.n_params},
        {"n_tensors", s.n_tensors},
        {"tensor_data_bytes", s.tensor_data_bytes},
        {"type_mix", mix},
        {"context_length", opt(s.context_length)},
        {"n_layers", opt(s.n_layers)},
        {"n_heads", opt(s.n_heads)},
        {"n_kv_heads", opt(s.n_kv_heads)},
        {"n_embd", opt(s.n_embd)},
        {"n_ff", opt(s.n_ff)},
        {"tokenizer_model", s.tokenizer_model},
        {"n_vocab", opt(s.n_vocab)},
        {"has_chat_template", s.has_chat_template},
    };
    auto meta = nlohmann::json::array();
    for (const auto& [key, v] : f.metadata())
        meta.push_back({{"key", key}, {"type", gguf::value_type_label(v)}, {"value", gguf::value_to_json(v, max_items)}});
    j["metadata"] = std::move(meta);
    if (fl.tensors) {
        auto ts = nlohmann::json::array();
        for (const auto& t : f.tensors())
            ts.push_back({{"name", t.name},
                          {"type", std::string(type_name(t.type))},
                          {"shape", std::vector<int64_t>(t.ne, t.ne + t.n_dims)},
                          {"offset", t.offset},
                          {"file_offset", f.data_offset() + t.offset},
                          {"size_bytes", t.size_bytes}});
        j["tensors"] = std::move(ts);
    }
    return j;
}

void print_text(const gguf::file& f, const inspect_flags& fl) {
    const auto s = gguf::summarize(f);
    const size_t max_items = fl.full ? SIZE_MAX : (fl.max_items ? fl.max_items : 3);
    const size_t max_chars = fl.full ? SIZE_MAX : 60;
    std::printf("%s\n", f.path().c_str());
    std::printf("  format        GGUF v%u, %s, alignment %u\n", f.version(), format_bytes(s.file_size_bytes).c_str(),
                f.alignment());
    std::printf("  architecture  %s%s\n", s.architecture.empty() ? "-" : s.architecture.c_str(),
                s.name.empty() ? "" : fmt::format(" ({})", s.name).c_str());
    if (!s.file_type.empty()) std::printf("  file type     %s\n", s.file_type.c_str());
    std::printf("  parameters    %s (%llu)\n", format_count(s.n_params).c_str(),
                static_cast<unsigned long long>(s.n_params));
    std::printf("  tensors       %llu: %s\n", static_cast<unsigned long long>(s.n_tensors),
                s.n_tensors ? gguf::format_type_mix(s).c_str() : "none (vocab-only file)");
    std::printf("  context       %s\n", opt_str(s.context_length).c_str());
    std::printf("  layers %s, heads %s, KV heads %s, embedding %s, FFN %s\n", opt_str(s.n_layers).c_str(),
                opt_str(s.n_heads).c_str(), opt_str(s.n_kv_heads).c_str(), opt_str(s.n_embd).c_str(),
                opt_str(s.n_ff).c_str());
    std::printf("  tokenizer     %s, %s tokens\n", s.tokenizer_model.empty() ? "-" : s.tokenizer_model.c_str(),
                opt_str(s.n_vocab).c_str());
    std::printf("  chat template %s\n", s.has_chat_template ? "yes" : "no");
    std::printf("metadata (%zu keys)\n", f.metadata().size());
    size_t key_width = 0, type_width = 0;
    for (const auto& [key, v] : f.metadata()) {
        key_width = std::max(key_width, key.size());
        type_width = std::max(type_width, gguf::value_type_label(v).size());
    }
    for (const auto& [key, v] : f.metadata())
        std::printf("  %-*s  %-*s  %s\n", static_cast<int>(key_width), key.c_str(), static_cast<int>(type_width),
                    gguf::value_type_label(v).c_str(), gguf::format_value(v, max_items, max_chars).c_str());
    if (!fl.tensors) return;
    std::printf("tensors (%zu, data at byte %llu)\n", f.tensors().size(),
                static_cast<unsigned long long>(f.data_offset()));
    size_t name_width = 4;
    for (const auto& t : f.tensors()) name_width = std::max(name_width, t.name.size());
    std::printf("  %-*s  %-7s  %-24s  %12s  %12s\n", static_cast<int>(name_width), "name", "type", "shape", "offset",
                "bytes");
    for (const auto& t : f.tensors())
        std::printf("  %-*s  %-7s  %-24s  %12llu  %12llu\n", static_cast<int>(name_width), t.name.c_str(),
                    std::string(type_name(t.type)).c_str(), shape_string(t).c_str(),
                    static_cast<unsigned long long>(t.offset), static_cast<unsigned long long>(t.size_bytes));
}

void run_inspect(const inspect_flags& fl) {
    auto results = nlohmann::json::array();
    std::vector<std::string> failures;
    for (size_t i = 0; i < fl.paths.size(); ++i) {
        const auto& path = fl.paths[i];
        try {
            const auto f = gguf::file::open(store::resolve_model(path));  // a path or a stored name
            if (fl.json) {
                results.push_back(to_json(f, fl));
            } else {
                if (i) std::printf("\n");
                print_text(f, fl);
            }
        } catch (const error& e) {
            // file::open names the path in format errors; other errors (open/mmap) may not.
            std::string msg = e.what();
            if (msg.rfind(path + ":", 0) != 0) msg = path + ": " + msg;
            failures.push_back(msg);
        }
    }
    if (fl.json && !results.empty())
        std::puts((results.size() == 1 && fl.paths.size() == 1 ? results[0] : results)
                      .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                      .c_str());
    std::fflush(stdout);
    if (failures.size() == 1) throw error(failures[0]);
    for (const auto& m : failures) std::fprintf(stderr, "error: %s\n", m.c_str());
    if (!failures.empty()) exit_code() = 1;
}

void setup(CLI::App& app) {
    auto fl = std::make_shared<inspect_flags>();
    auto* cmd = app.add_subcommand("inspect", "Show what a GGUF model file holds (metadata, tensors, type mix)");
    cmd->footer(
        "Examples:\n"
        "  edgellm inspect model.gguf                 # summary + all metadata, long arrays abbreviated\n"
        "  edgellm inspect model.gguf --tensors       # add the tensor table\n"
        "  edgellm inspect model.gguf --json --full   # complete metadata as JSON\n"
        "A malformed file prints 'error: PATH: what is wrong (field F at byte offset N)' and exits 1.");
    cmd->add_option("files", fl->paths, "GGUF file(s) to inspect")->required();
    cmd->add_flag("--tensors", fl->tensors, "List every tensor: name, type, shape, offset, size");
    cmd->add_flag("--json", fl->json, "Machine-readable output (one object; an array for several files)");
    cmd->add_flag("--full", fl->full, "Do not abbreviate arrays or long strings");
    cmd->add_option("--max-items", fl->max_items,
                    "Array items shown before abbreviating (default 3 for text, 16 for JSON)");
    cmd->callback([fl] { run_inspect(*fl); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("inspect", 80, setup);

}  // namespace edgellm::cli
