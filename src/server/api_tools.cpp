// Tool calls on the chat routes (OpenAI /v1/chat/completions, Ollama /api/chat): the request's
// `tools` and `tool_choice` into the prompt and grammar, the finished reply back into calls.
#include <fmt/format.h>

#include "sampling/grammar.h"
#include "server/server_impl.h"

namespace edgellm::server {

std::vector<int32_t> server::impl::chat_prompt_with_tools(const json& body, gen_input& in, tool_state& ts) {
    std::vector<chat::chat_message> msgs = parse_messages(body);
    opt_bool(body, "parallel_tool_calls");  // accepted: a forced call is one call, an auto reply may hold several
    auto t = body.find("tools");
    const bool has_tools = t != body.end() && !t->is_null() && !(t->is_array() && t->empty());
    auto tc = body.find("tool_choice");
    if (!has_tools) {
        if (tc != body.end() && !tc->is_null() && !(tc->is_string() && (*tc == "none" || *tc == "auto")))
            throw http_error(400, "'tool_choice' asks for a tool call but the request has no 'tools'");
        template_tool_info(ts);
        // Earlier tool calls and results in the history still go through the format's rewrite.
        chat::tool_prompt tp = chat::prepare_tool_prompt(ts.fmt, std::move(msgs), json::array(), {});
        return chat_prompt(tp.messages, tp.extra_context);
    }
    json tools;
    chat::tool_choice choice;
    std::string gbnf;
    template_tool_info(ts);
    try {
        tools = chat::normalize_tools(*t);
        choice = chat::parse_tool_choice(tc == body.end() ? json(nullptr) : *tc, tools);
        gbnf = chat::tool_call_grammar(ts.fmt, tools, choice);
    } catch (const chat::tool_error& e) {
        throw http_error(400, e.what());
    }
    ts.active = choice.k != chat::tool_choice::kind::none;
    if (!gbnf.empty()) {
        if (in.gp.sampling.grammar)
            throw http_error(400, "a forced tool call cannot be combined with 'response_format' / 'format'");
        try {
            in.gp.sampling.grammar = sampling::parse_grammar(gbnf);
        } catch (const sampling::grammar_error& e) {
            throw error(fmt::format("internal error: the tool-call grammar does not parse ({})\n{}", e.what(), gbnf));
        }
    }
    chat::tool_prompt tp = chat::prepare_tool_prompt(ts.fmt, std::move(msgs), tools, choice, ts.reads_tools);
    return chat_prompt(tp.messages, tp.extra_context);
}

tool_reply split_reply(const tool_state& ts, const std::string& text) {
    if (!ts.active) return {text, {}};
    chat::parsed_reply p = chat::parse_tool_reply(ts.fmt, text);
    for (auto& c : p.calls)
        if (c.id.empty()) c.id = chat::new_tool_call_id(ts.fmt);
    return {std::move(p.content), std::move(p.calls)};
}

}  // namespace edgellm::server
