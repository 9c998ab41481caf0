// Tool calls per template family (chat/tool_calls.h): the format each shared template speaks,
// replies in each family's syntax parsed into calls (text outside them kept as content), each
// template's own rendering of an assistant tool call parsed back into the same call, and the
// grammar that forces a call accepting exactly calls whose arguments follow the schema.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/tool_calls.h"
#include "sampling/grammar.h"
#include "sampling/grammar_matcher.h"

using namespace edgellm;
using namespace edgellm::chat;
using json = nlohmann::ordered_json;

namespace {

std::string read_template(const std::string& name) {
    std::ifstream f(std::string(EDGELLM_SHARED_DIR) + "/templates/" + name + ".jinja", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

const json& weather_tools() {
    static const json k = normalize_tools(json::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {
           "city": {"type": "string", "description": "the city"},
           "unit": {"type": "string", "enum": ["c", "f"], "description": "the unit"}},
         "required": ["city", "unit"]}}},
      {"type": "function", "function": {"name": "get_time", "description": "Local time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string", "description": "zone"}},
         "required": ["tz"]}}}])"));
    return k;
}

bool full_match(const std::string& gbnf, const std::string& text) {
    sampling::grammar_matcher m(sampling::parse_grammar(gbnf));
    return m.accept(text) && m.can_end();
}

struct family {
    const char* template_name;
    tool_format fmt;
};
const std::vector<family>& families() {
    static const std::vector<family> k = {
        {"Qwen-Qwen2.5-7B-Instruct", tool_format::hermes},
        {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", tool_format::hermes},
        {"NousResearch-Hermes-2-Pro-Mistral-7B-tool_use", tool_format::hermes},
        {"meta-llama-Llama-3.1-8B-Instruct", tool_format::llama3},
        {"meta-llama-Llama-3.2-3B-Instruct", tool_format::llama3},
        {"meta-llama-Llama-3.3-70B-Instruct", tool_format::llama3},
        {"mistralai-mistral-common-v3_spm", tool_format::mistral},
        {"meetkai-functionary-medium-v3.1", tool_format::functionary},
        {"llama-cpp-deepseek-r1", tool_format::deepseek},
        {"CohereForAI-c4ai-command-r-plus-tool_use", tool_format::command_r},
        {"google-gemma-2-2b-it", tool_format::generic},
        {"Qwen-Qwen2-7B-Instruct", tool_format::generic},
    };
    return k;
}

// The templates in ../shared/templates; without them the tests that read them skip, saying why.
#define REQUIRE_SHARED_TEMPLATES()                                                                  \
    if (!std::filesystem::exists(std::string(EDGELLM_SHARED_DIR) + "/templates"))                  \
    GTEST_SKIP() << "shared chat templates missing: " << EDGELLM_SHARED_DIR << "/templates (../shared not present)"

}  // namespace

TEST(ToolCalls, DetectsTheFormatOfEachSharedTemplate) {
    REQUIRE_SHARED_TEMPLATES();
    for (const family& f : families()) {
        SCOPED_TRACE(f.template_name);
        const std::string src = read_template(f.template_name);
        ASSERT_FALSE(src.empty());
        EXPECT_STREQ(tool_format_name(detect_tool_format(src)), tool_format_name(f.fmt));
    }
}

TEST(ToolCalls, ParsesRepliesInEachFamilysSyntax) {
    struct reply_case {
        tool_format fmt;
        std::string text;
        std::string content;
        std::vector<std::pair<std::string, std::string>> calls;  // name, arguments JSON
    };
    const std::vector<reply_case> cases = {
        {tool_format::hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>",
         "", {{"get_weather", R"({"city":"Paris","unit":"c"})"}}},
        {tool_format::hermes, "Let me check.\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>\n"
                              "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\", \\\"unit\\\": \\\"f\\\"}\"}\n</tool_call>",
         "Let me check.", {{"get_time", R"({"tz":"CET"})"}, {"get_weather", R"({"city":"Oslo","unit":"f"})"}}},
        {tool_format::hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par", {}},
        {tool_format::hermes, "No tools needed: 42.", "No tools needed: 42.", {}},
        {tool_format::llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"c\"}}", "",
         {{"get_weather", R"({"city":"Paris","unit":"c"})"}}},
        {tool_format::llama3, "<|python_tag|>{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}", "", {{"get_time", R"({"tz":"UTC"})"}}},
        {tool_format::llama3, "{\"name\": \"Bob\", \"age\": 3}", "{\"name\": \"Bob\", \"age\": 3}", {}},
        {tool_format::mistral, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}, \"id\": \"abcDEF123\"}]",
         "", {{"get_weather", R"({"city":"Paris","unit":"c"})"}}},
        {tool_format::functionary, "<function=get_time>{\"tz\": \"PST\"}</function>", "", {{"get_time", R"({"tz":"PST"})"}}},
        {tool_format::deepseek,
         "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Rome\", \"unit\": \"c\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
         "", {{"get_weather", R"({"city":"Rome","unit":"c"})"}}},
        {tool_format::command_r, "Action:\n```json\n[\n    {\n        \"tool_name\": \"get_time\",\n        \"parameters\": {\"tz\": \"JST\"}\n    }\n]\n```",
         "", {{"get_time", R"({"tz":"JST"})"}}},
        {tool_format::command_r, "Action:\n```json\n[{\"tool_name\": \"directly-answer\", \"parameters\": {}}]\n```",
         "Action:\n```json\n[{\"tool_name\": \"directly-answer\", \"parameters\": {}}]\n```", {}},
        {tool_format::generic, R"({"tool_call": {"name": "get_time", "arguments": {"tz": "UTC"}}})", "", {{"get_time", R"({"tz":"UTC"})"}}},
        {tool_format::generic, R"({"response": "Hello there"})", "Hello there", {}},
        {tool_format::generic, "plain text", "plain text", {}},
    };
    for (const reply_case& c : cases) {
        SCOPED_TRACE(std::string(tool_format_name(c.fmt)) + ": " + c.text);
        const parsed_reply r = parse_tool_reply(c.fmt, c.text);
        EXPECT_EQ(r.content, c.content);
        ASSERT_EQ(r.calls.size(), c.calls.size());
        for (size_t i = 0; i < c.calls.size(); ++i) {
            EXPECT_EQ(r.calls[i].name, c.calls[i].first);
            EXPECT_EQ(r.calls[i].arguments.dump(), c.calls[i].second);
        }
    }
    EXPECT_EQ(parse_tool_reply(tool_format::mistral, "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}, \"id\": \"abcDEF123\"}]")
                  .calls.at(0)
                  .id,
              "abcDEF123");
}

// The template's own rendering of an assistant tool call (the text after the generation prompt)
// parses back into that call: the parser reads what the family's template writes.
TEST(ToolCalls, EachTemplatesRenderingOfACallParsesBack) {
    REQUIRE_SHARED_TEMPLATES();
    for (const family& f : families()) {
        if (f.fmt == tool_format::generic) continue;
        SCOPED_TRACE(f.template_name);
        chat_template t("gguf", read_template(f.template_name), "<s>", "</s>");
        const tool_choice automatic;
        std::vector<chat_message> user = {{"user", "Weather in Paris?", json::object()}};
        json call = {{"id", "abcDEF123"}, {"type", "function"},
                     {"function", {{"name", "get_weather"}, {"arguments", R"({"city": "Paris", "unit": "c"})"}}}};
        std::vector<chat_message> both = user;
        both.push_back({"assistant", "", {{"tool_calls", json::array({call})}, {"content", nullptr}}});
        const tool_prompt p1 = prepare_tool_prompt(f.fmt, user, weather_tools(), automatic);
        const tool_prompt p2 = prepare_tool_prompt(f.fmt, both, weather_tools(), automatic);
        const std::string prefix = render_chat(t, p1.messages, true, p1.extra_context);
        const std::string full = render_chat(t, p2.messages, false, p2.extra_context);
        // The reply is what follows the common start (DeepSeek R1's generation prompt also opens
        // a <think> block the rendered history does not have).
        size_t common = 0;
        while (common < prefix.size() && common < full.size() && prefix[common] == full[common]) ++common;
        ASSERT_GT(common, prefix.size() / 2) << prefix << "\n---\n" << full;
        const std::string reply = full.substr(common);
        const parsed_reply r = parse_tool_reply(f.fmt, reply);
        ASSERT_EQ(r.calls.size(), 1u) << reply;
        EXPECT_EQ(r.calls[0].name, "get_weather");
        EXPECT_EQ(r.calls[0].arguments, json::parse(R"({"city": "Paris", "unit": "c"})")) << reply;
    }
}

TEST(ToolCalls, ForcedGrammarAcceptsOnlyCallsFollowingTheSchema) {
    tool_choice named;
    named.k = tool_choice::kind::named;
    named.name = "get_weather";
    tool_choice required;
    required.k = tool_choice::kind::required;
    struct grammar_case {
        tool_format fmt;
        std::string good, bad;
    };
    const std::vector<grammar_case> cases = {
        {tool_format::hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>",
         "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"k\"}}\n</tool_call>"},
        {tool_format::llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"f\"}}",
         "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"},
        {tool_format::mistral, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}]",
         "[TOOL_CALLS] [{\"name\": \"get_weathr\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}]"},
        {tool_format::functionary, "<function=get_weather>{\"city\": \"Paris\", \"unit\": \"c\"}</function>",
         "<function=get_weather>{\"city\": 3, \"unit\": \"c\"}</function>"},
        {tool_format::deepseek,
         "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"c\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
         "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
        {tool_format::command_r, "Action:\n```json\n[{\"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"c\"}}]\n```",
         "Action:\n```json\n[{\"tool_name\": \"get_weather\", \"parameters\": {}}]\n```"},
        {tool_format::generic, R"({"tool_call": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}})",
         R"({"response": "it is sunny"})"},
    };
    for (const grammar_case& c : cases) {
        SCOPED_TRACE(tool_format_name(c.fmt));
        const std::string g = tool_call_grammar(c.fmt, weather_tools(), named);
        ASSERT_FALSE(g.empty());
        EXPECT_TRUE(full_match(g, c.good)) << g;
        EXPECT_FALSE(full_match(g, c.bad)) << g;
        // The named tool only; `required` allows the other tool too.
        const std::string time_call = c.good.find("tool_name") != std::string::npos
                                          ? "Action:\n```json\n[{\"tool_name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}]\n```"
                                          : "";
        if (!time_call.empty()) {
            EXPECT_FALSE(full_match(g, time_call));
            EXPECT_TRUE(full_match(tool_call_grammar(c.fmt, weather_tools(), required), time_call));
        }
        // What the grammar accepts, the parser reads back.
        const parsed_reply r = parse_tool_reply(c.fmt, c.good);
        ASSERT_EQ(r.calls.size(), 1u);
        EXPECT_EQ(r.calls[0].name, "get_weather");
    }
    // Auto: native formats are free; the generic one is a call or a response.
    EXPECT_EQ(tool_call_grammar(tool_format::hermes, weather_tools(), tool_choice{}), "");
    const std::string generic_auto = tool_call_grammar(tool_format::generic, weather_tools(), tool_choice{});
    EXPECT_TRUE(full_match(generic_auto, R"({"response": "it is sunny"})"));
    EXPECT_TRUE(full_match(generic_auto, R"({"tool_call": {"name": "get_time", "arguments": {"tz": "UTC"}}})"));
    EXPECT_FALSE(full_match(generic_auto, "it is sunny"));
}

TEST(ToolCalls, RefusesBadToolsAndChoicesNamingTheProblem) {
    auto err = [](const json& tools, const json& choice = nullptr) {
        try {
            parse_tool_choice(choice, normalize_tools(tools));
        } catch (const tool_error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(err(json::parse(R"({"a": 1})")).find("must be an array"), std::string::npos);
    EXPECT_NE(err(json::parse(R"([{"type": "function", "function": {}}])")).find("tools[0].function.name"), std::string::npos);
    EXPECT_NE(err(json::parse(R"([{"type": "code", "function": {"name": "f"}}])")).find("tools[0].type"), std::string::npos);
    EXPECT_NE(err(json::parse(R"([{"function": {"name": "f"}}, {"function": {"name": "f"}}])")).find("used twice"),
              std::string::npos);
    EXPECT_NE(err(json::parse(R"([{"function": {"name": "f", "parameters": 3}}])")).find("parameters"), std::string::npos);
    EXPECT_NE(err(weather_tools(), "sometimes").find("'tool_choice' must be"), std::string::npos);
    EXPECT_NE(err(weather_tools(), json::parse(R"({"type": "function", "function": {"name": "nope"}})")).find("'nope'"),
              std::string::npos);
    // A schema feature the grammar cannot follow, in a forced call: named.
    const json bad = normalize_tools(json::parse(
        R"([{"function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "string", "pattern": "a+"}}}}}])"));
    tool_choice req;
    req.k = tool_choice::kind::required;
    try {
        tool_call_grammar(tool_format::hermes, bad, req);
        FAIL() << "no error";
    } catch (const tool_error& e) {
        EXPECT_NE(std::string(e.what()).find("pattern"), std::string::npos) << e.what();
    }
}

TEST(ToolCalls, GenericPromptDescribesToolsAndRewritesHistory) {
    std::vector<chat_message> msgs = {
        {"user", "Weather in Paris?", json::object()},
        {"assistant", "", {{"content", nullptr}, {"tool_calls", json::array({{{"id", "call_1"}, {"type", "function"},
            {"function", {{"name", "get_weather"}, {"arguments", R"({"city":"Paris","unit":"c"})"}}}}})}}},
        {"tool", "18 degrees", {{"tool_call_id", "call_1"}}},
    };
    const tool_prompt p = prepare_tool_prompt(tool_format::generic, msgs, weather_tools(), tool_choice{});
    ASSERT_EQ(p.messages.size(), 4u);
    EXPECT_EQ(p.messages[0].role, "system");
    EXPECT_NE(p.messages[0].content.find("get_weather"), std::string::npos);
    EXPECT_NE(p.messages[0].content.find("\"response\""), std::string::npos);
    EXPECT_EQ(json::parse(p.messages[2].content)["tool_call"]["arguments"]["city"], "Paris");
    EXPECT_EQ(p.messages[3].role, "user");
    EXPECT_EQ(json::parse(p.messages[3].content)["tool_response"]["tool"], "get_weather");
    EXPECT_TRUE(p.extra_context.empty());
    // A native format keeps the messages and passes the tools to the template.
    const tool_prompt h = prepare_tool_prompt(tool_format::hermes, msgs, weather_tools(), tool_choice{});
    EXPECT_EQ(h.extra_context["tools"].size(), 2u);
    EXPECT_TRUE(h.messages[1].extra["tool_calls"][0]["function"]["arguments"].is_object());
    const tool_prompt fn = prepare_tool_prompt(tool_format::functionary, msgs, weather_tools(), tool_choice{});
    EXPECT_TRUE(fn.messages[1].extra["tool_calls"][0]["function"]["arguments"].is_string());
}

TEST(ToolCalls, TemplatesThatDoNotListToolsGetThemInTheSystemMessage) {
    REQUIRE_SHARED_TEMPLATES();
    // DeepSeek R1's official template parses calls in the history but never reads `tools`.
    const std::string src = read_template("deepseek-ai-DeepSeek-R1-Distill-Llama-8B");
    ASSERT_EQ(detect_tool_format(src), tool_format::deepseek);
    EXPECT_FALSE(template_reads_tools(src));
    EXPECT_TRUE(template_reads_tools(read_template("Qwen-Qwen2.5-7B-Instruct")));
    EXPECT_FALSE(template_reads_tools("{{ messages }} {{ my_tools_list }}"));
    chat_template t("gguf", src, "<s>", "</s>");
    const std::vector<chat_message> user = {{"user", "Weather in Paris?", json::object()}};
    const tool_prompt p = prepare_tool_prompt(tool_format::deepseek, user, weather_tools(), tool_choice{}, false);
    const std::string text = render_chat(t, p.messages, true, p.extra_context);
    EXPECT_NE(text.find("get_weather"), std::string::npos) << text;
    EXPECT_NE(text.find("<｜tool▁sep｜><tool name>"), std::string::npos) << text;
    // With "none" nothing is added.
    tool_choice none;
    none.k = tool_choice::kind::none;
    EXPECT_EQ(prepare_tool_prompt(tool_format::deepseek, user, weather_tools(), none, false).messages.size(), 1u);
}
