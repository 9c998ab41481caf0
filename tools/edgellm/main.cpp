// edgellm CLI entry point: builds the subcommand tree from the registry and maps errors to
// "error: ..." on stderr with a non-zero exit code.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>

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

int main(int argc, char** argv) {
    using namespace edgellm::cli;
    CLI::App app{"edgellm: run, compare and serve LLMs on edge devices", "edgellm"};
    app.set_version_flag("--version", std::string("edgellm ") + EDGELLM_VERSION);
    app.require_subcommand(0, 1);
    auto& reg = command_registry();
    std::sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
    for (auto& entry : reg) entry.setup(app);
    try {
        app.parse(argc, argv);
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
