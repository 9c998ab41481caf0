// Test tool: renders a Jinja2 chat template with a JSON context, for the Python jinja2 oracle.
// Usage: chat_render TEMPLATE_FILE [CONTEXT_JSON_FILE|-]  (context from stdin when omitted or "-").
//        chat_render --list-builtins | --builtin-source NAME   (the built-in fallback templates)
// The context may carry "__now__": epoch seconds for strftime_now() (formatted in UTC).
// Prints the rendered text to stdout; on a template error prints "error: ..." to stderr, exit 2.
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/jinja.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: chat_render TEMPLATE_FILE [CONTEXT_JSON_FILE|-]\n";
        return 1;
    }
    const std::string first = argv[1];
    try {
        if (first == "--list-builtins") {
            for (const auto& n : edgellm::chat::builtin_template_names()) std::cout << n << "\n";
            return 0;
        }
        if (first == "--builtin-source" && argc > 2) {
            std::cout << edgellm::chat::builtin_template_source(argv[2]);
            return 0;
        }
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    std::ifstream tf(argv[1], std::ios::binary);
    if (!tf) {
        std::cerr << "error: cannot open " << argv[1] << "\n";
        return 1;
    }
    std::string source((std::istreambuf_iterator<char>(tf)), std::istreambuf_iterator<char>());
    std::string ctx_text;
    if (argc < 3 || std::string(argv[2]) == "-") {
        ctx_text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        std::ifstream cf(argv[2], std::ios::binary);
        ctx_text.assign(std::istreambuf_iterator<char>(cf), std::istreambuf_iterator<char>());
    }
    try {
        auto j = nlohmann::ordered_json::parse(ctx_text.empty() ? "{}" : ctx_text);
        edgellm::jinja::render_options opts;
        if (j.contains("__now__")) {
            auto secs = j["__now__"].get<int64_t>();
            opts.now = [secs] { return std::chrono::system_clock::time_point(std::chrono::seconds(secs)); };
            opts.now_is_utc = true;
            j.erase("__now__");
        }
        edgellm::jinja::template_program prog(source);
        std::string out = prog.render(edgellm::jinja::value::from_json(j), opts);
        std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    }
}
