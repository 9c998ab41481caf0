// GBNF grammars: the parser (valid grammars, errors with line and column, hostile input), the
// matcher on strings (incl. multi-byte and split UTF-8), the token mask over a small vocabulary
// whose tokens span grammar elements, and the sampler chain's grammar stage.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sampling/grammar.h"
#include "sampling/grammar_matcher.h"
#include "sampling/json_schema.h"
#include "sampling/sampler.h"

using namespace edgellm::sampling;

namespace {

bool full_match(const std::shared_ptr<const grammar>& g, const std::string& text) {
    grammar_matcher m(g);
    return m.accept(text) && m.can_end();
}

std::string parse_error(const std::string& text) {
    try {
        parse_grammar(text);
    } catch (const grammar_error& e) {
        return e.what();
    }
    return "(no error)";
}

// llama.cpp's grammars/json.gbnf, verbatim in substance.
const char* k_json_gbnf = R"(# JSON, as llama.cpp's json.gbnf
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
)";

}  // namespace

TEST(GrammarParser, ParsesLlamaCppJsonGrammar) {
    auto g = parse_grammar(k_json_gbnf);
    EXPECT_TRUE(full_match(g, R"({"a": [1, 2.5, -3e4], "b": {"c": "d\n\u00e9"}, "e": true})"));
    EXPECT_TRUE(full_match(g, "{}"));
    EXPECT_FALSE(full_match(g, R"({"a": })"));
    EXPECT_FALSE(full_match(g, R"({"a": 1)"));  // not closed
    EXPECT_FALSE(full_match(g, "[1]"));          // root is an object
}

TEST(GrammarParser, OperatorsAndClasses) {
    auto g = parse_grammar(R"(root ::= "a"+ [b-d]* "x"? ("yz" | [^a-z]){2,3} .)");
    EXPECT_TRUE(full_match(g, "aabcdxyz12!"));
    EXPECT_TRUE(full_match(g, "ayzyzq"));
    EXPECT_FALSE(full_match(g, "bxyzyz!"));         // needs one "a"
    EXPECT_FALSE(full_match(g, "ayz!"));            // {2,3} needs two
    EXPECT_FALSE(full_match(g, "ayzyzyzyz!"));      // ... and at most three
    auto e = parse_grammar(R"(root ::= "\x41\u00e9\t\\\"" [\x30-\x39]{1,} "\[")");
    EXPECT_TRUE(full_match(e, "A\xc3\xa9\t\\\"42["));
    auto r = parse_grammar("root ::= item{3}\nitem ::= [ab]  # comment\n");
    EXPECT_TRUE(full_match(r, "aba"));
    EXPECT_FALSE(full_match(r, "ab"));
    auto u = parse_grammar("root ::= \"é\" [α-ω]+");
    EXPECT_TRUE(full_match(u, "éλμ"));
    EXPECT_FALSE(full_match(u, "éa"));
}

TEST(GrammarParser, ErrorsNameLineAndColumn) {
    EXPECT_EQ(parse_error("root ::= \"a\"\nb ::= \"c\"\nfoo \"x\"\n"), "grammar:3:5: expected '::='");
    EXPECT_EQ(parse_error("root ::= missing\n"), "grammar:1:10: undefined rule 'missing'");
    EXPECT_EQ(parse_error("item ::= \"a\"\n"), "grammar: no 'root' rule (generation starts from it)");
    EXPECT_EQ(parse_error("root ::= \"abc\n"), "grammar:1:10: unterminated string literal");
    EXPECT_EQ(parse_error("root ::= [abc\n"), "grammar:1:10: unterminated character class");
    EXPECT_EQ(parse_error("root ::= (\"a\" \"b\"\n"), "grammar:2:1: expected ')'");
    EXPECT_EQ(parse_error("root ::= * \"a\"\n"), "grammar:1:10: expected an item before '*'");
    EXPECT_EQ(parse_error("root ::= \"\\q\"\n"), "grammar:1:11: unknown escape '\\q'");
    EXPECT_EQ(parse_error("root ::= [z-a]\n"), "grammar:1:13: character range end is before its start");
    EXPECT_EQ(parse_error("root ::= \"a\"{3,2}\n"), "grammar:1:13: repetition {m,n} with n < m");
    EXPECT_EQ(parse_error("root ::= \"a\"\nroot ::= \"b\"\n"), "grammar:2:1: rule 'root' is defined twice");
}

TEST(GrammarParser, RefusesHostileGrammars) {
    // Left recursion, direct and through a nullable prefix: a pushdown matcher would loop.
    EXPECT_NE(parse_error("root ::= root \"a\" | \"b\"\n").find("left-recursive"), std::string::npos);
    EXPECT_NE(parse_error("root ::= x root \"a\" | \"b\"\nx ::= \"\" | \"c\"\n").find("left-recursive"),
              std::string::npos);
    // Deep nesting is refused before it can exhaust the stack.
    EXPECT_NE(parse_error("root ::= " + std::string(100000, '(') + "\"a\"" + std::string(100000, ')')).find("nested deeper"),
              std::string::npos);
    EXPECT_NE(parse_error("root ::= \"a\"{0,100000}\n").find("above the limit"), std::string::npos);
    std::string big = "root ::= r0\n";
    for (int i = 0; i < 400; ++i) big += "r" + std::to_string(i) + " ::= [a]{1000}\n";
    EXPECT_NE(parse_error(big).find("too large"), std::string::npos);
    // A long chain of rules is fine (no recursion in the parser or the matcher follows it).
    std::string chain = "root ::= r0\n";
    for (int i = 0; i < 20000; ++i) chain += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "\n";
    chain += "r20000 ::= \"z\"\n";
    EXPECT_TRUE(full_match(parse_grammar(chain), "z"));
    // Right recursion is fine, and its nesting is bounded while matching.
    auto nest = parse_grammar("root ::= \"(\" root \")\" | \"x\"\n");
    EXPECT_TRUE(full_match(nest, "((x))"));
    grammar_matcher m(nest);
    EXPECT_FALSE(m.accept(std::string(k_matcher_max_depth + 10, '(')));
}

TEST(GrammarMatcher, AcceptsUtf8SplitAcrossChunks) {
    auto g = parse_grammar("root ::= \"a\" [é-ë] \"€\"\n");  // é = C3 A9, € = E2 82 AC
    grammar_matcher m(g);
    EXPECT_TRUE(m.accept("a\xc3"));  // a lead byte that é..ë can complete
    EXPECT_FALSE(m.can_end());
    EXPECT_FALSE(m.accept("\xbf"));  // C3 BF = ÿ: outside the class, state unchanged
    EXPECT_TRUE(m.accept("\xa9\xe2"));
    EXPECT_TRUE(m.accept("\x82"));
    EXPECT_FALSE(m.can_end());
    EXPECT_TRUE(m.accept("\xac"));
    EXPECT_TRUE(m.can_end());
    EXPECT_TRUE(m.must_end());
    grammar_matcher bad(g);
    EXPECT_FALSE(bad.accept("a\xe2"));  // a 3-byte lead cannot become é..ë
    EXPECT_FALSE(bad.accept("a\xa9"));  // a continuation byte without a lead
    // Overlong forms are not the character they would spell: E0 needs A0..BF next, C0/C1 never lead.
    auto o = parse_grammar("root ::= \"o\" | \"é\"\n");
    EXPECT_FALSE(grammar_matcher(o).accept("\xe0"));      // E0 cannot become "o" ...
    EXPECT_FALSE(grammar_matcher(o).accept("\xc1\xaf"));  // ... nor can the overlong C1 AF
    auto high = parse_grammar("root ::= [\\u0800-\\uffff]\n");
    EXPECT_TRUE(full_match(high, "\xe0\xa0\x80"));         // U+0800
    EXPECT_FALSE(grammar_matcher(high).accept("\xed\xa0\x80"));  // a UTF-16 surrogate
}

TEST(GrammarMask, TokensSpanningElementsAndPartialUtf8) {
    auto g = parse_grammar(R"(root ::= "{" ws "\"k\"" ws ":" ws [0-9]+ ws "}"
ws ::= " "?
)");
    // Ids: 0 "{", 1 "{\"", 2 "\"k\":", 3 " ", 4 "1", 5 "23}", 6 "}", 7 "x", 8 "\xc3" (half of é),
    // 9 "" (a control token), 10 "<eos>" (end of generation, no bytes), 11 "{ \"k\": 7}" (all of it).
    std::vector<std::string> pieces = {"{", "{\"", "\"k\":", " ", "1", "23}", "}", "x", "\xc3", "", "", "{ \"k\": 7}"};
    auto v = std::make_shared<token_vocab>(pieces, std::vector<int32_t>{10});
    grammar_matcher m(g);
    std::vector<uint8_t> allowed;
    std::unique_ptr<mask_scratch> scratch;
    auto allowed_ids = [&] {
        allowed_tokens(m, *v, allowed, scratch);
        std::vector<int32_t> ids;
        for (size_t i = 0; i < allowed.size(); ++i)
            if (allowed[i]) ids.push_back(static_cast<int32_t>(i));
        return ids;
    };
    EXPECT_EQ(allowed_ids(), (std::vector<int32_t>{0, 1, 11}));
    ASSERT_TRUE(m.accept("{"));
    EXPECT_EQ(allowed_ids(), (std::vector<int32_t>{2, 3}));
    ASSERT_TRUE(m.accept("\"k\":"));
    EXPECT_EQ(allowed_ids(), (std::vector<int32_t>{3, 4, 5}));
    ASSERT_TRUE(m.accept("1"));
    EXPECT_EQ(allowed_ids(), (std::vector<int32_t>{3, 4, 5, 6}));
    ASSERT_TRUE(m.accept("23}"));
    EXPECT_EQ(allowed_ids(), (std::vector<int32_t>{10}));  // complete: only end of generation

    // A string whose class allows é: the half token is allowed, and the other half after it.
    auto s = parse_grammar("root ::= [a-zé]+\n");
    std::vector<std::string> p2 = {"a", "\xc3", "\xa9", "\xa9" "b", "\xbf", "A"};
    auto v2 = std::make_shared<token_vocab>(p2, std::vector<int32_t>{});
    grammar_matcher m2(s);
    allowed_tokens(m2, *v2, allowed, scratch);
    EXPECT_EQ(allowed, (std::vector<uint8_t>{1, 1, 0, 0, 0, 0}));
    ASSERT_TRUE(m2.accept("\xc3"));
    allowed_tokens(m2, *v2, allowed, scratch);
    EXPECT_EQ(allowed, (std::vector<uint8_t>{0, 0, 1, 1, 0, 0}));
}

TEST(GrammarMask, ChainKeepsOnlyGrammarTokensAndEndsWhenComplete) {
    std::vector<std::string> pieces = {"yes", "no", "maybe", "y", "es", ""};
    auto v = std::make_shared<token_vocab>(pieces, std::vector<int32_t>{5});
    sampling_params p;
    p.temperature = 0;  // greedy
    p.grammar = parse_grammar("root ::= \"yes\" | \"no\"\n");
    sampler_chain chain = sampler_chain::from_params(p, v);
    EXPECT_EQ(chain.describe().rfind("grammar -> ", 0), 0u);
    // "maybe" is the model's favourite, then <eos>, then "y": the grammar allows "yes", "no", "y".
    std::vector<float> logits = {1, 0, 9, 5, 0, 8};
    EXPECT_EQ(chain.sample(logits), 3);  // "y"
    chain.accept_generated(3);
    EXPECT_FALSE(chain.grammar_done());
    EXPECT_EQ(chain.sample(logits), 4);  // "es"
    chain.accept_generated(4);
    EXPECT_TRUE(chain.grammar_done());
    // Sampling at a temperature never leaves the grammar either.
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    for (uint64_t seed = 0; seed < 50; ++seed) {
        p.seed = seed;
        sampler_chain c = sampler_chain::from_params(p, v);
        const int32_t t = c.sample(logits);
        EXPECT_TRUE(t == 0 || t == 1 || t == 3) << t;
    }
    p.grammar = parse_grammar("root ::= \"yes\"\n");
    EXPECT_THROW(sampler_chain::from_params(p, nullptr), edgellm::usage_error);
}
