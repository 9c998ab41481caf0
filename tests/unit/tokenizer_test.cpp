// Tokenizer behaviour beyond the reference vectors: UTF-8 helpers, pre-tokenizer splitting,
// special tokens, BOS/EOS/EOG, streaming decode, and property tests on random (also invalid)
// UTF-8 — no crash, and decode(encode(s)) == s wherever the tokenizer is lossless.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_util.h"

namespace edgellm {
namespace {

using tok_detail::find_pre_tokenizer;
using tok_detail::regex_splitter;

// Shared vocabs are loaded once per test binary (the big BPE ones take a moment).
const tokenizer* shared_tokenizer(const std::string& rel) {
    static std::map<std::string, std::unique_ptr<tokenizer>> cache;
    auto it = cache.find(rel);
    if (it != cache.end()) return it->second.get();
    const auto path = test::shared_path(rel);
    if (!std::filesystem::exists(path)) return nullptr;
    const auto file = gguf::file::open(path.string());
    return (cache[rel] = tokenizer::from_gguf(file)).get();
}

#define REQUIRE_TOKENIZER(var, rel)                       \
    const tokenizer* var = shared_tokenizer(rel);         \
    if (!var) GTEST_SKIP() << "reference vocab missing: " << rel << " (../shared not present)"

// ---- UTF-8 helpers -------------------------------------------------------------------------

TEST(tokenizer_unicode, decode_rejects_overlong_surrogate_and_out_of_range_sequences) {
    for (std::string bad : {std::string("\xC0\x80"), std::string("\xE0\x80\x80"), std::string("\xED\xA0\x80"),
                            std::string("\xF4\x90\x80\x80"), std::string("\xF8\x88\x80\x80\x80"), std::string("\x80"),
                            std::string("\xE2\x82")}) {
        size_t pos = 0;
        uint32_t cp = 0;
        EXPECT_FALSE(unicode::decode_utf8(bad, pos, cp)) << "accepted an invalid sequence of " << bad.size() << " bytes";
        EXPECT_EQ(pos, 0u);
    }
    size_t pos = 0;
    uint32_t cp = 0;
    ASSERT_TRUE(unicode::decode_utf8("\xF0\x9F\xA6\x99", pos, cp));
    EXPECT_EQ(cp, 0x1F999u);
    EXPECT_EQ(pos, 4u);
}

TEST(tokenizer_unicode, sanitize_replaces_each_invalid_byte_with_u_fffd) {
    EXPECT_EQ(unicode::sanitize_utf8("a\xFF" "b\xE2\x82"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(unicode::sanitize_utf8("caf\xC3\xA9"), "caf\xC3\xA9");
    EXPECT_TRUE(unicode::is_valid_utf8("caf\xC3\xA9"));
    EXPECT_FALSE(unicode::is_valid_utf8("caf\xC3"));
}

TEST(tokenizer_unicode, incomplete_tail_holds_back_only_unfinished_valid_prefixes) {
    EXPECT_EQ(unicode::incomplete_utf8_tail("abc"), 0u);
    EXPECT_EQ(unicode::incomplete_utf8_tail("ab\xF0\x9F\xA6"), 3u);  // 3 of 4 bytes of an emoji
    EXPECT_EQ(unicode::incomplete_utf8_tail("ab\xF0\x9F"), 2u);
    EXPECT_EQ(unicode::incomplete_utf8_tail("ab\xC3"), 1u);
    EXPECT_EQ(unicode::incomplete_utf8_tail("ab\xC3\xA9"), 0u);      // complete
    EXPECT_EQ(unicode::incomplete_utf8_tail("ab\xFF"), 0u);          // never valid: pass through
    EXPECT_EQ(unicode::incomplete_utf8_tail("ab\xE0\x80"), 0u);      // overlong prefix: pass through
    EXPECT_EQ(unicode::incomplete_utf8_tail("\x80\x80\x80"), 0u);
}

TEST(tokenizer_unicode, gpt2_byte_alphabet_is_a_bijection_with_printable_stand_ins) {
    std::set<std::string> seen;
    for (int b = 0; b < 256; ++b) {
        const std::string& u = unicode::byte_to_unicode(static_cast<uint8_t>(b));
        size_t pos = 0;
        uint32_t cp = 0;
        ASSERT_TRUE(unicode::decode_utf8(u, pos, cp));
        EXPECT_EQ(pos, u.size());
        EXPECT_EQ(unicode::unicode_to_byte(cp), b);
        EXPECT_TRUE(seen.insert(u).second);
    }
    EXPECT_EQ(unicode::byte_to_unicode(' '), "\xC4\xA0");  // "Ġ"
    EXPECT_EQ(unicode::byte_to_unicode('A'), "A");
}

// ---- pre-tokenizers --------------------------------------------------------------------------

TEST(tokenizer_pre, every_known_pre_tokenizer_compiles_and_pieces_cover_the_text) {
    const std::string text = "Hello  world's 12345 \xE4\xBD\xA0\xE5\xA5\xBD!!\n\n\tx \xF0\x9F\xA6\x99 ";
    for (const std::string& pre : tok_detail::known_pre_tokenizers()) {
        const auto spec = find_pre_tokenizer(pre);
        EXPECT_TRUE(spec.known) << pre;
        regex_splitter split(spec.regexes);
        std::string joined;
        for (auto p : split.split(text)) {
            EXPECT_FALSE(p.empty()) << pre;
            joined += p;
        }
        EXPECT_EQ(joined, text) << pre;
    }
}

TEST(tokenizer_pre, gpt2_regex_splits_words_contractions_and_space_runs) {
    regex_splitter split(find_pre_tokenizer("gpt-2").regexes);
    const auto pieces = split.split("Hello world's  test");
    const std::vector<std::string_view> want = {"Hello", " world", "'s", " ", " test"};
    EXPECT_EQ(pieces, want);
}

TEST(tokenizer_pre, llama3_groups_digits_by_three_and_qwen2_by_one) {
    regex_splitter l3(find_pre_tokenizer("llama-bpe").regexes);
    regex_splitter q2(find_pre_tokenizer("qwen2").regexes);
    EXPECT_EQ(l3.split("1234567"), (std::vector<std::string_view>{"123", "456", "7"}));
    EXPECT_EQ(q2.split("123"), (std::vector<std::string_view>{"1", "2", "3"}));
}

TEST(tokenizer_pre, unknown_pre_falls_back_to_default) {
    const auto spec = find_pre_tokenizer("no-such-pre");
    EXPECT_FALSE(spec.known);
    EXPECT_EQ(spec.name, "default");
    EXPECT_FALSE(spec.regexes.empty());
}

// ---- hand-built SPM vocab ------------------------------------------------------------------

vocab tiny_spm() {
    vocab v;
    v.type = vocab_type::spm;
    v.model = "llama";
    auto add = [&](std::string t, float score, token_type ty) {
        v.tokens.push_back(std::move(t));
        v.scores.push_back(score);
        v.types.push_back(ty);
    };
    add("<unk>", 0, token_type::unknown);
    add("<s>", 0, token_type::control);
    add("</s>", 0, token_type::control);
    for (int b = 0; b < 256; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        add(hex, 0, token_type::byte);
    }
    const std::string sp = "\xE2\x96\x81";
    add(sp, -1, token_type::normal);
    add("a", -2, token_type::normal);
    add("b", -2, token_type::normal);
    add("ab", -1.5f, token_type::normal);
    add(sp + "a", -0.5f, token_type::normal);
    add(sp + "ab", -0.1f, token_type::normal);
    add("<x>", 0, token_type::user_defined);
    add("<x><y>", 0, token_type::user_defined);
    add("<|ctl|>", 0, token_type::control);
    apply_family_defaults(v);
    return v;
}

TEST(tokenizer_spm, merges_by_score_and_falls_back_to_bytes) {
    const auto tok = tokenizer::from_vocab(tiny_spm());
    const int32_t sp_ab = tok->find_token("\xE2\x96\x81" "ab");
    ASSERT_NE(sp_ab, k_no_token);
    EXPECT_EQ(tok->encode("ab", false, false), std::vector<int32_t>{sp_ab});
    EXPECT_EQ(tok->encode("ab", true, false), (std::vector<int32_t>{1, sp_ab}));
    // "é" has no token: its two UTF-8 bytes become <0xC3> <0xA9>.
    const auto ids = tok->encode("\xC3\xA9", false, false);
    const std::vector<int32_t> want = {tok->find_token("\xE2\x96\x81"), tok->find_token("<0xC3>"),
                                       tok->find_token("<0xA9>")};
    EXPECT_EQ(ids, want);
    EXPECT_EQ(tok->decode(ids), "\xC3\xA9");
}

TEST(tokenizer_spm, user_defined_tokens_match_longest_first_control_only_with_parse_special) {
    const auto tok = tokenizer::from_vocab(tiny_spm());
    const int32_t xy = tok->find_token("<x><y>"), x = tok->find_token("<x>"), ctl = tok->find_token("<|ctl|>");
    EXPECT_EQ(tok->encode("<x><y><x>", false, false), (std::vector<int32_t>{xy, x}));
    const auto plain = tok->encode("<|ctl|>", false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), ctl), 0);
    EXPECT_EQ(tok->decode(plain), "<|ctl|>");
    const auto special = tok->encode("<|ctl|>ab", false, true);
    ASSERT_FALSE(special.empty());
    EXPECT_EQ(special[0], ctl);
    EXPECT_EQ(tok->decode(special), "ab");  // control hidden; the space prefix after it stripped
    EXPECT_EQ(tok->decode(special, true), "<|ctl|>ab");
}

TEST(tokenizer_spm, merges_across_a_space_still_happen_when_the_vocab_has_such_tokens) {
    // Words are merged separately only when no token spans "x▁"; this vocab has one.
    vocab v = tiny_spm();
    const std::string sp = "\xE2\x96\x81";
    for (const auto& [t, score] : {std::pair<std::string, float>{sp + "b", -0.3f}, {"a" + sp + "b", 1.0f}}) {
        v.tokens.push_back(t);
        v.scores.push_back(score);
        v.types.push_back(token_type::normal);
    }
    const auto tok = tokenizer::from_vocab(v);
    const std::vector<int32_t> want = {tok->find_token(sp), tok->find_token("a" + sp + "b")};
    EXPECT_EQ(tok->encode("a b", false, false), want);
    EXPECT_EQ(tok->decode(want), "a b");
}

// llama.cpp's rule per token type: USER_DEFINED text is always split out as that token, CONTROL
// and UNKNOWN only with parse_special, NORMAL / UNUSED / BYTE never.
TEST(tokenizer_spm, each_token_type_is_recognised_as_llama_cpp_does) {
    vocab v = tiny_spm();
    auto add = [&](std::string t, token_type ty) {
        v.tokens.push_back(std::move(t));
        v.scores.push_back(-100.0f);
        v.types.push_back(ty);
        return v.n_vocab() - 1;
    };
    const int32_t normal = add("<n>", token_type::normal), unused = add("<u>", token_type::unused),
                  unknown = add("<k>", token_type::unknown), user = add("<d>", token_type::user_defined),
                  control = add("<c>", token_type::control);
    const auto tok = tokenizer::from_vocab(v);
    auto contains = [](const std::vector<int32_t>& ids, int32_t id) {
        return std::find(ids.begin(), ids.end(), id) != ids.end();
    };
    for (bool parse_special : {false, true}) {
        SCOPED_TRACE(parse_special);
        EXPECT_FALSE(contains(tok->encode("a<n>b", false, parse_special), normal));
        EXPECT_FALSE(contains(tok->encode("a<u>b", false, parse_special), unused));
        EXPECT_FALSE(contains(tok->encode("a<0x41>b", false, parse_special), tok->find_token("<0x41>")));
        EXPECT_TRUE(contains(tok->encode("a<d>b", false, parse_special), user));
        EXPECT_TRUE(contains(tok->encode("a <d> b", false, parse_special), user));
        EXPECT_EQ(contains(tok->encode("a<k>b", false, parse_special), unknown), parse_special);
        EXPECT_EQ(contains(tok->encode("a<c>b", false, parse_special), control), parse_special);
    }
}

TEST(tokenizer_spm, end_of_generation_texts_become_control_with_llama_cpp_s_exceptions) {
    auto with = [](std::initializer_list<std::pair<const char*, token_type>> extra) {
        vocab v = tiny_spm();
        v.eos = k_no_token;  // so that "</s>" ends generation by its text only
        for (const auto& [t, ty] : extra) {
            v.tokens.push_back(t);
            v.scores.push_back(0.0f);
            v.types.push_back(ty);
        }
        return tokenizer::from_vocab(v);
    };
    {
        // A user-defined "</s>" or "<eos>" ends generation and so is a control token: it then
        // needs parse_special (Phi-3's "</s>").
        auto tok = with({{"[EOT]", token_type::user_defined}, {"<eos>", token_type::user_defined}});
        const int32_t eot = tok->find_token("[EOT]");
        EXPECT_TRUE(tok->is_eog(eot));
        const auto plain = tok->encode("[EOT]", false, false);
        EXPECT_EQ(std::count(plain.begin(), plain.end(), eot), 0);
        EXPECT_EQ(tok->decode(plain), "[EOT]");
        EXPECT_EQ(tok->encode("[EOT]", false, true), std::vector<int32_t>{eot});
    }
    {
        // gpt-oss: channel markers are user-defined; with <|return|> and <|call|>, <|end|> too
        // and it no longer ends generation.
        auto tok = with({{"<|channel|>", token_type::control}, {"<|return|>", token_type::control},
                         {"<|call|>", token_type::control}, {"<|end|>", token_type::control}});
        const int32_t channel = tok->find_token("<|channel|>"), end = tok->find_token("<|end|>");
        EXPECT_EQ(tok->encode("<|channel|>", false, false), std::vector<int32_t>{channel});
        EXPECT_EQ(tok->encode("<|end|>", false, false), std::vector<int32_t>{end});
        EXPECT_FALSE(tok->is_eog(end));
        EXPECT_TRUE(tok->is_eog(tok->find_token("<|return|>")));
        EXPECT_FALSE(tok->is_eog(channel));
    }
    {
        // Without <|return|>, <|end|> stays an end-of-generation control token.
        auto tok = with({{"<|call|>", token_type::control}, {"<|end|>", token_type::control}});
        EXPECT_TRUE(tok->is_eog(tok->find_token("<|end|>")));
    }
    {
        // Gemma 4: "</s>" is a normal token, not searched for even with parse_special.
        auto tok = with({{"<|tool_response>", token_type::user_defined}});
        EXPECT_FALSE(tok->is_eog(2));
        EXPECT_FALSE(tok->is_special(2));
        EXPECT_NE(tok->encode("</s>", false, true), std::vector<int32_t>{2});
        EXPECT_TRUE(tok->is_eog(tok->find_token("<|tool_response>")));
    }
}

TEST(tokenizer_spm, strip_attributes_follow_the_model) {
    vocab v = tiny_spm();
    v.tokens.push_back("<mask>");
    v.scores.push_back(0.0f);
    v.types.push_back(token_type::control);
    const int32_t mask = v.n_vocab() - 1;
    const int32_t sp_a = tokenizer::from_vocab(v)->find_token("\xE2\x96\x81" "a");
    {
        const auto tok = tokenizer::from_vocab(v);  // no strip: the spaces before <mask> stay
        EXPECT_GT(tok->encode("a  <mask>", false, true).size(), 2u);
    }
    v.arch = "jina-bert-v3";  // by architecture
    EXPECT_EQ(tokenizer::from_vocab(v)->encode("a  <mask>", false, true), (std::vector<int32_t>{sp_a, mask}));
    v.arch.clear();
    v.pre = "jina-v2-code";  // by pre-tokenizer
    const auto tok = tokenizer::from_vocab(v);
    EXPECT_EQ(tok->encode("a  <mask>", false, true), (std::vector<int32_t>{sp_a, mask}));
    vocab phi = tiny_spm();
    phi.name = "Phi-3-mini";
    const auto phi_tok = tokenizer::from_vocab(phi);
    const int32_t ctl = phi_tok->find_token("<|ctl|>");
    EXPECT_EQ(phi_tok->encode("<|ctl|>  a", false, true), (std::vector<int32_t>{ctl, sp_a}));
}

TEST(tokenizer_api, out_of_range_ids_are_a_clear_error_not_a_crash) {
    const auto tok = tokenizer::from_vocab(tiny_spm());
    const std::vector<int32_t> bad = {tok->n_vocab()};
    EXPECT_THROW(tok->decode(bad), error);
    EXPECT_THROW(tok->token_to_piece(-1, false), error);
    vocab v = tiny_spm();
    v.bos = 100000;
    EXPECT_THROW(tokenizer::from_vocab(v), error);
}

// ---- shared vocabs: specials, BOS/EOS, EOG ---------------------------------------------------

TEST(tokenizer_shared, qwen2_control_tokens_need_parse_special_and_are_end_of_generation) {
    REQUIRE_TOKENIZER(tok, "tokenizer/ggml-vocab-qwen2.gguf");
    const int32_t im_start = tok->find_token("<|im_start|>"), im_end = tok->find_token("<|im_end|>");
    ASSERT_NE(im_start, k_no_token);
    const auto ids = tok->encode("<|im_start|>user\nhi<|im_end|>", true, true);
    EXPECT_EQ(ids.front(), im_start);  // qwen2 metadata says add_bos_token = false
    EXPECT_EQ(ids.back(), im_end);
    EXPECT_TRUE(tok->is_eog(im_end));
    EXPECT_TRUE(tok->is_eog(tok->find_token("<|endoftext|>")));
    EXPECT_FALSE(tok->is_eog(im_start));
    EXPECT_EQ(tok->decode(ids), "user\nhi");
    EXPECT_EQ(tok->decode(ids, true), "<|im_start|>user\nhi<|im_end|>");
    const auto plain = tok->encode("<|im_start|>", false, false);
    EXPECT_GT(plain.size(), 1u);
    // User-defined tokens are recognised even without parse_special (as HF does).
    const int32_t tool = tok->find_token("<tool_call>");
    ASSERT_NE(tool, k_no_token);
    EXPECT_EQ(tok->encode("<tool_call>", false, false), std::vector<int32_t>{tool});
}

TEST(tokenizer_shared, bos_and_eos_follow_the_metadata) {
    REQUIRE_TOKENIZER(spm, "tokenizer/ggml-vocab-llama-spm.gguf");
    EXPECT_EQ(spm->encode("Hi", true, false).front(), 1);
    EXPECT_NE(spm->encode("Hi", false, false).front(), 1);
    EXPECT_EQ(spm->encode("", true, false), std::vector<int32_t>{1});
    EXPECT_TRUE(spm->encode("", false, false).empty());
    REQUIRE_TOKENIZER(l3, "tokenizer/ggml-vocab-llama-bpe.gguf");
    EXPECT_EQ(l3->encode("Hi", true, false).front(), 128000);
    EXPECT_EQ(l3->eot(), 128009);
    EXPECT_TRUE(l3->is_eog(128009));
    EXPECT_TRUE(l3->is_eog(128001));
    REQUIRE_TOKENIZER(bert, "tokenizer/ggml-vocab-bert-bge.gguf");
    const auto b = bert->encode("hello", true, false);
    ASSERT_GE(b.size(), 3u);
    EXPECT_EQ(b.front(), 101);  // [CLS]
    EXPECT_EQ(b.back(), 102);   // [SEP]
}

TEST(tokenizer_shared, stories260k_decodes_the_reference_greedy_ids_to_the_reference_text) {
    EDGELLM_REQUIRE_SHARED(ids_path, "models/stories260K.greedy.ids.txt");
    REQUIRE_TOKENIZER(tok, "models/stories260K.gguf");
    const std::vector<int32_t> ids = test::read_ids(ids_path);
    ASSERT_GT(ids.size(), 100u);
    std::ifstream tin(test::shared_path("models/stories260K.greedy.txt"));
    std::string text((std::istreambuf_iterator<char>(tin)), std::istreambuf_iterator<char>());
    if (!text.empty() && text.back() == '\n') text.pop_back();  // the file ends with a newline
    EXPECT_EQ(tok->decode(ids), text);
    EXPECT_EQ(tok->decode(tok->encode(text, true, false)), text);
}

TEST(tokenizer_shared, incremental_decoder_never_emits_broken_utf8) {
    REQUIRE_TOKENIZER(tok, "tokenizer/ggml-vocab-llama-spm.gguf");
    // The emoji and CJK text are not in the vocab as pieces, so they arrive as byte tokens.
    const std::string text = "Llama \xF0\x9F\xA6\x99 says \xE4\xBD\xA0\xE5\xA5\xBD \xC3\xA9t\xC3\xA9";
    const auto ids = tok->encode(text, true, false);
    incremental_decoder dec(*tok);
    std::string streamed;
    size_t n_partial = 0;
    for (int32_t id : ids) {
        const std::string chunk = dec.push(id);
        EXPECT_TRUE(unicode::is_valid_utf8(chunk)) << "chunk after id " << id;
        if (tok->token_to_piece(id, false).size() == 1 && chunk.empty()) ++n_partial;
        streamed += chunk;
    }
    streamed += dec.flush();
    EXPECT_EQ(streamed, text);
    EXPECT_GT(n_partial, 0u) << "the test text should exercise held-back bytes";
}

TEST(tokenizer_shared, primed_decoder_keeps_the_space_of_a_continuation) {
    REQUIRE_TOKENIZER(tok, "tokenizer/ggml-vocab-llama-spm.gguf");
    const auto prompt = tok->encode("Once upon a", true, false);
    const std::vector<int32_t> cont = {tok->find_token("\xE2\x96\x81time"), tok->find_token("\xE2\x96\x81there")};
    ASSERT_NE(cont[0], k_no_token);
    ASSERT_NE(cont[1], k_no_token);
    incremental_decoder fresh(*tok);
    incremental_decoder primed(*tok);
    primed.prime(prompt);
    std::string a, b;
    for (int32_t id : cont) {
        a += fresh.push(id);
        b += primed.push(id);
    }
    EXPECT_EQ(b, " time there");
    EXPECT_EQ(a, "time there");
    incremental_decoder after_bos(*tok);
    after_bos.prime(std::vector<int32_t>{tok->bos()});
    EXPECT_EQ(after_bos.push(tok->find_token("\xE2\x96\x81Once")), "Once");
}

// ---- property tests --------------------------------------------------------------------------

std::string random_valid_utf8(std::mt19937& rng) {
    static const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
        {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x24F}, {0x300, 0x36F}, {0x391, 0x3C9}, {0x400, 0x4FF},
        {0x4E00, 0x4FFF}, {0x3040, 0x30FF}, {0xAC00, 0xACFF}, {0x2000, 0x206F}, {0x1F300, 0x1F64F}, {0x10000, 0x10FFFF}};
    std::string s;
    const int n = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int i = 0; i < n; ++i) {
        const auto& r = ranges[std::uniform_int_distribution<size_t>(0, ranges.size() - 1)(rng)];
        uint32_t cp = std::uniform_int_distribution<uint32_t>(r.first, r.second)(rng);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
        unicode::append_utf8(s, cp);
    }
    return s;
}

std::string random_bytes(std::mt19937& rng) {
    std::string s;
    const int n = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int i = 0; i < n; ++i) {
        // Bias towards bytes that make interesting (often broken) UTF-8.
        const int k = std::uniform_int_distribution<int>(0, 3)(rng);
        s.push_back(static_cast<char>(k == 0 ? std::uniform_int_distribution<int>(0x80, 0xFF)(rng)
                                             : std::uniform_int_distribution<int>(0, 0xFF)(rng)));
    }
    return s;
}

class tokenizer_property : public ::testing::TestWithParam<std::string> {};

TEST_P(tokenizer_property, random_unicode_round_trips_and_random_bytes_never_crash) {
    REQUIRE_TOKENIZER(tok, "tokenizer/ggml-vocab-" + GetParam() + ".gguf");
    std::mt19937 rng(1234);
    // Lossless: SPM with byte fallback, and byte-level BPE whose vocab has all 256 byte
    // stand-ins (falcon and starcoder lack a few, e.g. \v, so those bytes are dropped).
    bool lossless = tok->type() != vocab_type::wpm;
    if (tok->type() == vocab_type::bpe)
        for (int b = 0; b < 256; ++b)
            if (tok->find_token(unicode::byte_to_unicode(static_cast<uint8_t>(b))) == k_no_token) lossless = false;
    for (int i = 0; i < 150; ++i) {
        const std::string s = random_valid_utf8(rng);
        for (bool parse_special : {false, true}) {
            std::vector<int32_t> ids;
            ASSERT_NO_THROW(ids = tok->encode(s, true, parse_special));
            for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab());
            if (lossless) {
                EXPECT_EQ(tok->decode(ids), s) << "string #" << i;
            }
        }
    }
    for (int i = 0; i < 150; ++i) {
        const std::string s = random_bytes(rng);
        std::vector<int32_t> ids;
        ASSERT_NO_THROW(ids = tok->encode(s, false, false));
        if (!lossless) continue;
        // SPM keeps raw bytes (byte fallback); byte-level BPE sees invalid bytes as U+FFFD.
        const std::string want = tok->type() == vocab_type::spm ? s : unicode::sanitize_utf8(s);
        EXPECT_EQ(tok->decode(ids), want) << "byte string #" << i;
    }
}

INSTANTIATE_TEST_SUITE_P(shared, tokenizer_property,
                         ::testing::Values("bert-bge", "deepseek-llm", "falcon", "gpt-2", "gpt-neox", "llama-bpe",
                                           "llama-spm", "mpt", "phi-3", "qwen2", "starcoder"),
                         [](const auto& info) {
                             std::string n = info.param;
                             for (char& c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

}  // namespace
}  // namespace edgellm
