// Tests of chat prompt formatting: built-in fallbacks, the choice of fallback from the vocab
// and architecture (with its reason), user overrides, and rendering real shared templates.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/jinja.h"
#include "core/error.h"
#include "test_util.h"

using namespace edgellm::chat;

namespace {

model_chat_info info_with(std::set<std::string> tokens, std::string arch = "llama") {
    model_chat_info info;
    info.architecture = std::move(arch);
    info.bos_token = "<s>";
    info.eos_token = "</s>";
    info.has_token = [tokens](const std::string& t) { return tokens.count(t) > 0; };
    return info;
}

std::vector<chat_message> conversation() {
    return {{"system", "Be brief.", {}}, {"user", "Hi", {}}, {"assistant", "Hello!", {}}, {"user", "Bye", {}}};
}

}  // namespace

TEST(ChatTemplate, EveryBuiltinRendersTheWholeConversation) {
    for (const auto& name : builtin_template_names()) {
        chat_template t(name, builtin_template_source(name), "<s>", "</s>");
        std::string with = render_chat(t, conversation(), true);
        std::string without = render_chat(t, conversation(), false);
        EXPECT_NE(with.find("Hi"), std::string::npos) << name;
        EXPECT_NE(with.find("Hello!"), std::string::npos) << name;
        EXPECT_NE(with.find("Bye"), std::string::npos) << name;
        EXPECT_NE(with.find("Be brief."), std::string::npos) << name;
        // [INST] formats end every user turn with the cue for the assistant already.
        if (name != "llama2" && name != "mistral")
            EXPECT_NE(with, without) << name << ": add_generation_prompt must change the output";
        else
            EXPECT_EQ(with, without) << name;
    }
}

TEST(ChatTemplate, BuiltinFormatsAreExact) {
    std::vector<chat_message> msgs = {{"user", "Hi", {}}};
    auto fmt = [&](const std::string& name) {
        chat_template t(name, builtin_template_source(name), "<s>", "</s>");
        return render_chat(t, msgs, true);
    };
    EXPECT_EQ(fmt("chatml"), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(fmt("llama3"), "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ(fmt("llama2"), "<s>[INST] Hi [/INST]");
    EXPECT_EQ(fmt("mistral"), "<s>[INST] Hi [/INST]");
    EXPECT_EQ(fmt("phi3"), "<|user|>\nHi<|end|>\n<|assistant|>\n");
    EXPECT_EQ(fmt("gemma"), "<s><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    EXPECT_EQ(fmt("zephyr"), "<|user|>\nHi</s>\n<|assistant|>\n");
    EXPECT_EQ(fmt("deepseek"), "<s>User: Hi\n\nAssistant:");
}

TEST(ChatTemplate, ChoiceFollowsSpecialTokensThenArchitecture) {
    EXPECT_EQ(choose_template(info_with({"<|im_start|>", "<|im_end|>"})).name, "chatml");
    EXPECT_EQ(choose_template(info_with({"<|start_header_id|>", "<|eot_id|>"})).name, "llama3");
    EXPECT_EQ(choose_template(info_with({"<start_of_turn>"}, "gemma2")).name, "gemma");
    EXPECT_EQ(choose_template(info_with({"<|end|>", "<|assistant|>", "<|user|>"})).name, "phi3");
    EXPECT_EQ(choose_template(info_with({"<|assistant|>", "<|user|>"})).name, "zephyr");
    EXPECT_EQ(choose_template(info_with({"[INST]", "[/INST]"})).name, "mistral");
    EXPECT_EQ(choose_template(info_with({"<｜Assistant｜>"})).name, "deepseek3");
    EXPECT_EQ(choose_template(info_with({}, "llama")).name, "llama2");
    EXPECT_EQ(choose_template(info_with({}, "qwen2")).name, "chatml");
    EXPECT_EQ(choose_template(info_with({}, "phi3")).name, "phi3");
    auto c = choose_template(info_with({}, "mamba"));
    EXPECT_EQ(c.name, "chatml");
    EXPECT_FALSE(c.reason.empty());
    EXPECT_NE(choose_template(info_with({"<|im_start|>"})).reason.find("<|im_start|>"), std::string::npos);
}

TEST(ChatTemplate, ModelTemplateWinsUnlessTheUserOverrides) {
    auto info = info_with({"<|im_start|>"});
    info.chat_template = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}";
    chat_template t = select_template(info);
    EXPECT_EQ(t.name(), "gguf");
    EXPECT_EQ(render_chat(t, {{"user", "x", {}}}, false), "[user:x]");

    chat_template o = select_template(info, std::string("zephyr"));
    EXPECT_EQ(o.name(), "zephyr");
    chat_template custom = select_template(info, std::string("{{ messages[0].content | upper }}"));
    EXPECT_EQ(render_chat(custom, {{"user", "x", {}}}, false), "X");
    EXPECT_THROW(select_template(info, std::string("no-such-template")), edgellm::usage_error);
}

TEST(ChatTemplate, BrokenModelTemplateFailsEarlyWithPosition) {
    auto info = info_with({});
    info.chat_template = "{% for m in messages %}\n{{ m.content ";
    try {
        select_template(info);
        FAIL() << "expected a syntax error";
    } catch (const edgellm::jinja::template_error& e) {
        EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
}

TEST(ChatTemplate, ExtraFieldsToolsAndContextReachTheTemplate) {
    chat_template t("custom",
                    "{{ tools | length }}|{% for m in messages %}{{ m.role }}"
                    "{% if m.tool_calls %}:{{ m.tool_calls[0].function.arguments | tojson }}{% endif %};{% endfor %}"
                    "{{ custom_flag }}",
                    "", "");
    chat_message call{"assistant", "", nlohmann::ordered_json::object()};
    call.extra["tool_calls"] = nlohmann::ordered_json::parse(
        R"([{"type": "function", "function": {"name": "f", "arguments": {"z": 1, "a": "é"}}}])");
    nlohmann::ordered_json extra = {{"tools", nlohmann::ordered_json::array({{{"type", "function"}}})},
                                    {"custom_flag", "on"}};
    EXPECT_EQ(render_chat(t, {{"user", "q", {}}, call}, true, extra), R"(1|user;assistant:{"z": 1, "a": "é"};on)");
}

TEST(ChatTemplate, SharedQwenTemplateRendersToolsAndGenerationPrompt) {
    EDGELLM_REQUIRE_SHARED(path, "templates/Qwen-Qwen2.5-7B-Instruct.jinja");
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    chat_template t("gguf", ss.str(), "", "<|im_end|>");
    std::string out = render_chat(t, {{"user", "Hello", {}}}, true);
    EXPECT_EQ(out,
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
}
