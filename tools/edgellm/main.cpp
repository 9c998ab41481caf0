// edgellm CLI entry point: builds the subcommand tree from the registry and maps errors to
// "error: ..." on stderr with a non-zero exit code.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "command.h"
#include "core/error.h"

namespace edgellm::cli {
std::vector<command_entry>& command_registry() {
    static std::vector<command_entry> r;
    return r;
}
int& exit_code() {
    static int code = 0;
    return code;
}
}  // namespace edgellm::cli

namespace {
// The seed system's command line (`--list`, `--backend X --model-path M --prompt P`,
// `--benchmark --backends A B --model-names M N`) maps onto subcommands, so both spellings work.
std::vector<std::string> translate_seed_flags(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0].rfind("--", 0) != 0) return args;
    auto has = [&](const char* f) { return std::find(args.begin(), args.end(), f) != args.end(); };
    if (has("--benchmark")) {
        // The seed pairs each backend with its model (compare_backends' backends_models).
        args.erase(std::find(args.begin(), args.end(), "--benchmark"));
        args.insert(args.begin(), "bench");
        if (!has("--pair")) args.emplace_back("--pair");
    } else if (has("--list")) {
        args.erase(std::find(args.begin(), args.end(), "--list"));
        args.insert(args.begin(), "list");
    } else if (has("--backend") || has("--model-path") || has("--model-name") || has("--prompt")) {
        args.insert(args.begin(), "run");
    }
    return args;
}
}  // namespace

int main(int argc, char** argv) {
    using namespace edgellm::cli;
    CLI::App app{"edgellm: run, compare and serve LLMs on edge devices", "edgellm"};
    app.set_version_flag("--version", std::string("edgellm ") + EDGELLM_VERSION);
    app.require_subcommand(0, 1);
    auto& reg = command_registry();
    std::sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
    for (auto& entry : reg) entry.setup(app);
    try {
        std::vector<std::string> args = translate_seed_flags(argc, argv);
        // llama.cpp's one-dash multi-letter spellings, which CLI11 would read as -t "b" / -n "p".
        for (auto& a : args)
            if (a == "-tb" || a == "-np" || a == "-ngl" || a == "-md" || a == "-ctk" || a == "-fa") a = "-" + a;
        std::reverse(args.begin(), args.end());  // CLI11 takes the vector in reverse order
        app.parse(args);
        if (app.get_subcommands().empty()) {
            std::fputs(app.help().c_str(), stdout);
            return 0;
        }
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const edgellm::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return exit_code();
}
