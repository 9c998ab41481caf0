// Tokenizer against the reference vectors in ../shared/tokenizer (ids produced by the original
// HF tokenizers, checked by llama.cpp): every string must tokenize to exactly the expected ids,
// and decode back to the input wherever the tokenizer is lossless.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_util.h"

namespace edgellm {
namespace {

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> split_inputs(const std::string& all) {
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t pos = 0;
    while (true) {
        const size_t next = all.find(sep, pos);
        if (next == std::string::npos) {
            // The file ends with a separator; anything after it is not a test string.
            break;
        }
        out.push_back(all.substr(pos, next - pos));
        pos = next + sep.size();
    }
    return out;
}

std::vector<std::vector<int32_t>> read_expected(const std::filesystem::path& p) {
    std::vector<std::vector<int32_t>> out;
    std::ifstream in(p);
    std::string line;
    while (std::getline(in, line)) {
        std::vector<int32_t> ids;
        std::istringstream ls(line);
        int64_t id;
        while (ls >> id) ids.push_back(static_cast<int32_t>(id));
        out.push_back(std::move(ids));
    }
    return out;
}

std::string show(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += std::to_string(id) + " ";
    return s;
}

class vocab_vectors : public ::testing::TestWithParam<std::string> {};

TEST_P(vocab_vectors, every_reference_string_tokenizes_exactly) {
    EDGELLM_REQUIRE_SHARED(gguf_path, "tokenizer/ggml-vocab-" + GetParam() + ".gguf");
    const auto inp = split_inputs(read_all(gguf_path.string() + ".inp"));
    const auto expected = read_expected(gguf_path.string() + ".out");
    ASSERT_FALSE(inp.empty());
    ASSERT_EQ(inp.size(), expected.size()) << "the .inp and .out files disagree on the number of strings";

    const auto file = gguf::file::open(gguf_path.string());
    const auto tok = tokenizer::from_gguf(file);
    size_t n_fail = 0;
    for (size_t i = 0; i < inp.size(); ++i) {
        const auto got = tok->encode(inp[i], /*add_bos=*/false, /*parse_special=*/false);
        if (got != expected[i]) {
            ++n_fail;
            ADD_FAILURE() << "string #" << i << " '" << inp[i] << "'\n  expected: " << show(expected[i])
                          << "\n  got:      " << show(got);
        }
    }
    EXPECT_EQ(n_fail, 0u) << "of " << inp.size() << " strings";
}

// The lossless tokenizers (SPM, byte-level BPE); WordPiece lowercases and drops spaces.
class lossless_vocab_vectors : public vocab_vectors {};

TEST_P(lossless_vocab_vectors, decode_inverts_encode) {
    EDGELLM_REQUIRE_SHARED(gguf_path, "tokenizer/ggml-vocab-" + GetParam() + ".gguf");
    const auto file = gguf::file::open(gguf_path.string());
    const auto tok = tokenizer::from_gguf(file);
    ASSERT_NE(tok->type(), vocab_type::wpm) << "WordPiece is not lossless; list it only in vocab_vectors";
    for (const std::string& s : split_inputs(read_all(gguf_path.string() + ".inp"))) {
        for (bool add_bos : {false, true}) {
            const auto ids = tok->encode(s, add_bos, false);
            EXPECT_EQ(tok->decode(ids), s) << "add_bos=" << add_bos << " ids: " << show(ids);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(shared, vocab_vectors,
                         ::testing::Values("bert-bge", "deepseek-llm", "falcon", "gpt-2", "llama-bpe", "llama-spm",
                                           "mpt", "phi-3", "qwen2", "starcoder"),
                         [](const auto& info) {
                             std::string n = info.param;
                             for (char& c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });
INSTANTIATE_TEST_SUITE_P(shared, lossless_vocab_vectors,
                         ::testing::Values("deepseek-llm", "falcon", "gpt-2", "llama-bpe", "llama-spm",
                                           "mpt", "phi-3", "qwen2", "starcoder"),
                         [](const auto& info) {
                             std::string n = info.param;
                             for (char& c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

}  // namespace
}  // namespace edgellm
