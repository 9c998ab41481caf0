// `edgellm list`: every backend edgellm knows, whether it is available here, and why not.
#include <fmt/format.h>

#include <future>
#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "command.h"

namespace edgellm::cli {
namespace {

struct list_options {
    bool json = false;
    std::string url;
};

int run_list(const list_options& o) {
    const auto& reg = backends::registry();
    std::vector<std::future<backends::availability>> checks;
    for (const auto& info : reg) {
        checks.push_back(std::async(std::launch::async, [&info, &o] {
            backends::backend_settings s;
            s.base_url = o.url;
            s.connect_timeout_s = 1;
            s.timeout_s = 5;
            return info.create()->check_available(s);
        }));
    }
    nlohmann::json out = nlohmann::json::array();
    size_t w = 0;
    for (const auto& info : reg) w = std::max(w, info.name.size());
    if (!o.json) fmt::print("{:<{}}  {:<11}  {}\n", "backend", w, "status", "details");
    for (size_t i = 0; i < reg.size(); ++i) {
        auto a = checks[i].get();
        if (o.json) {
            out.push_back({{"name", reg[i].name}, {"description", reg[i].description}, {"aliases", reg[i].aliases},
                           {"available", a.available}, {"reason", a.reason}, {"hint", a.hint}});
            continue;
        }
        fmt::print("{:<{}}  {:<11}  {}\n", reg[i].name, w, a.available ? "available" : "unavailable",
                   a.available ? reg[i].description + (a.reason.empty() ? "" : " — " + a.reason) : a.reason);
        if (!a.available && !a.hint.empty()) fmt::print("{:<{}}  {:<11}  how to get it: {}\n", "", w, "", a.hint);
    }
    if (o.json) fmt::print("{}\n", out.dump(2));
    return 0;
}

void setup(CLI::App& app) {
    auto o = std::make_shared<list_options>();
    auto* cmd = app.add_subcommand("list", "List backends and whether each is available here");
    cmd->add_flag("--json", o->json, "Machine-readable output");
    cmd->add_option("--url", o->url, "Probe HTTP backends at this URL instead of their defaults");
    cmd->footer("Examples:\n  edgellm list\n  edgellm list --json");
    cmd->callback([o] { exit_code() = run_list(*o); });
}

}  // namespace
EDGELLM_REGISTER_COMMAND("list", 10, setup);
}  // namespace edgellm::cli
