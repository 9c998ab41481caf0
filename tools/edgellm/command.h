// Subcommand registry for the edgellm CLI. Each tools/edgellm/cmd_*.cpp registers itself with
// EDGELLM_REGISTER_COMMAND so that adding a command touches exactly one new file.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace edgellm::cli {

// Adds one subcommand to `app` (flags + callback). The callback reports failure by throwing;
// main() turns exceptions into "error: ..." and exit code 1.
using command_setup = std::function<void(CLI::App& app)>;

struct command_entry {
    std::string name;
    int order;  // position in --help
    command_setup setup;
};

std::vector<command_entry>& command_registry();

struct command_registrar {
    command_registrar(std::string name, int order, command_setup setup) {
        command_registry().push_back({std::move(name), order, std::move(setup)});
    }
};

// Exit code a command callback may set for main() to return (default 0).
int& exit_code();

}  // namespace edgellm::cli

#define EDGELLM_CONCAT_INNER(a, b) a##b
#define EDGELLM_CONCAT(a, b) EDGELLM_CONCAT_INNER(a, b)
#define EDGELLM_REGISTER_COMMAND(name, order, fn) \
    static ::edgellm::cli::command_registrar EDGELLM_CONCAT(edgellm_cmd_, __LINE__)(name, order, fn)
