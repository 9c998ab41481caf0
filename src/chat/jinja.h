// A Jinja2 interpreter covering what chat templates use, with the semantics HF transformers
// renders them with (trim_blocks, lstrip_blocks, loopcontrols, HF's tojson, no autoescape).
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "chat/jinja_lexer.h"
#include "chat/jinja_value.h"

namespace edgellm::jinja {

struct render_options {
    // Clock for strftime_now(); defaults to the system clock. Tests inject a fixed time.
    std::function<std::chrono::system_clock::time_point()> now;
    bool now_is_utc = false;         // format now() in UTC instead of local time
    uint64_t max_steps = 50'000'000;  // evaluation steps before giving up (runaway loops)
    int max_depth = 200;              // nested macro/call depth (runaway recursion)
    size_t max_output_bytes = 256u << 20;
};

struct node;
using node_list = std::vector<std::unique_ptr<node>>;

class template_program {
public:
    // Parses `source`; throws template_error with line and column on syntax errors.
    explicit template_program(const std::string& source, const lexer_options& lex = {});
    ~template_program();
    template_program(template_program&&) noexcept;
    template_program& operator=(template_program&&) noexcept;

    // Renders with `vars` (a dict) as the template context; throws template_error on
    // raise_exception(), undefined-variable misuse, type errors and exceeded limits.
    std::string render(const value& vars, const render_options& opts = {}) const;

private:
    std::unique_ptr<node_list> body_;
};

}  // namespace edgellm::jinja
