// Fuzz target: any bytes as a Jinja2 template must parse and render to text or a
// template_error, within the run limits, never crash or hang. The context is a small chat.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace edgellm::jinja;
    static const value context = value::from_json(nlohmann::ordered_json::parse(R"({
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "héllo"},
                     {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}],
        "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})"));
    render_options opts;
    opts.max_steps = 200000;
    opts.max_depth = 50;
    opts.max_output_bytes = 1 << 20;
    try {
        template_program prog(std::string(reinterpret_cast<const char*>(data), size));
        prog.render(context, opts);
    } catch (const template_error&) {
    } catch (const edgellm::error&) {
    }
    return 0;
}
