// Pre-tokenizer regex lists per `tokenizer.ggml.pre` family (the same expressions llama.cpp
// uses, which adapt the HF tokenizer.json patterns) and their PCRE2 split loop.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pre_tokenizer.h"

#include <pcre2.h>

#include <map>

#include "core/error.h"

namespace edgellm::tok_detail {

namespace {

// GPT-2's pattern. The trailing "|\\s+" of the original is implied: text no regex matches
// becomes a piece of its own anyway.
const char* const k_gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// Llama 3 / cl100k: case-insensitive contractions spelled out, digits in groups of up to 3.
const char* const k_llama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but single digits.
const char* const k_qwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// CJK ideographs, a block range DeepSeek uses as written in its tokenizer.json, and Hangul.
const char* const k_deepseek_cjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
const char* const k_deepseek_letters = R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
const char* const k_deepseek_punct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
const char* const k_bloom = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";
const char* const k_tekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const k_gpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct family {
    std::vector<std::string> regexes;
    bool ignore_merges = false;
};

const std::map<std::string, family>& families() {
    static const std::map<std::string, family> f = {
        {"default", {{R"([\p{P}\$\+<=>\^~\|]+)", k_gpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}}},
        {"gpt2", {{k_gpt2}}},
        {"llama3", {{k_llama3}, true}},
        {"dbrx", {{k_llama3}}},
        {"qwen2", {{k_qwen2}}},
        {"deepseek-llm", {{"[\\r\\n]", k_deepseek_letters, k_deepseek_punct, R"(\s+$)", k_deepseek_cjk, R"(\p{N}+)"}}},
        {"deepseek-coder", {{"[\\r\\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", k_deepseek_cjk, R"(\p{N})"}}},
        {"deepseek-v3",
         {{R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
           R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
        {"falcon", {{R"([\p{P}\$\+<=>\^~\|`]+)", k_gpt2, "[0-9][0-9][0-9]"}}},
        {"starcoder", {{R"(\p{N})", k_gpt2}}},
        {"bloom", {{k_bloom}}},
        {"viking", {{k_bloom, R"(\p{N})"}}},
        {"tekken", {{k_tekken}, true}},
        {"gpt4o", {{k_gpt4o}}},
    };
    return f;
}

// tokenizer.ggml.pre value -> family, following llama.cpp's grouping.
const std::map<std::string, std::string, std::less<>>& aliases() {
    static const std::map<std::string, std::string, std::less<>> a = {
        {"default", "default"},
        {"llama3", "llama3"}, {"llama-v3", "llama3"}, {"llama-bpe", "llama3"}, {"falcon3", "llama3"},
        {"falcon-h1", "llama3"}, {"pixtral", "llama3"}, {"midm-2.0", "llama3"}, {"lfm2", "llama3"},
        {"dbrx", "dbrx"}, {"smaug-bpe", "dbrx"}, {"chatglm-bpe", "dbrx"}, {"glm4", "dbrx"},
        {"deepseek-llm", "deepseek-llm"},
        {"deepseek-coder", "deepseek-coder"},
        {"deepseek-v3", "deepseek-v3"},
        {"falcon", "falcon"},
        {"gpt-2", "gpt2"}, {"gpt2", "gpt2"}, {"mpt", "gpt2"}, {"olmo", "gpt2"}, {"jais", "gpt2"},
        {"phi-2", "gpt2"}, {"jina-es", "gpt2"}, {"jina-de", "gpt2"}, {"jina-v2-es", "gpt2"},
        {"jina-v2-de", "gpt2"}, {"jina-v1-en", "gpt2"}, {"jina-v2-code", "gpt2"}, {"roberta-bpe", "gpt2"},
        {"gigachat", "gpt2"}, {"exaone4", "gpt2"}, {"trillion", "gpt2"}, {"granite-docling", "gpt2"},
        {"starcoder", "starcoder"}, {"refact", "starcoder"}, {"command-r", "starcoder"},
        {"smollm", "starcoder"}, {"codeshell", "starcoder"}, {"exaone", "starcoder"}, {"minerva-7b", "starcoder"},
        {"qwen2", "qwen2"}, {"qwen2.5", "qwen2"}, {"deepseek-r1-qwen", "qwen2"}, {"stablelm2", "qwen2"},
        {"megrez", "qwen2"}, {"hunyuan", "qwen2"}, {"kormo", "qwen2"}, {"grok-2", "qwen2"},
        {"poro-chat", "bloom"}, {"bloom", "bloom"}, {"gpt3-finnish", "bloom"},
        {"viking", "viking"},
        {"tekken", "tekken"},
        {"gpt-4o", "gpt4o"}, {"llama4", "gpt4o"},
    };
    return a;
}

}  // namespace

pre_tokenizer_spec find_pre_tokenizer(std::string_view pre) {
    pre_tokenizer_spec spec;
    auto it = aliases().find(pre);
    spec.known = it != aliases().end();
    spec.name = spec.known ? it->second : "default";
    const family& fam = families().at(spec.name);
    spec.regexes = fam.regexes;
    spec.ignore_merges = fam.ignore_merges;
    return spec;
}

std::vector<std::string> known_pre_tokenizers() {
    std::vector<std::string> out;
    for (const auto& [k, v] : aliases()) out.push_back(k);
    return out;
}

struct regex_splitter::impl {
    std::vector<pcre2_code*> codes;
    std::vector<bool> jit_ok;
    ~impl() {
        for (auto* c : codes) pcre2_code_free(c);
    }
};

regex_splitter::regex_splitter(const std::vector<std::string>& regexes) : impl_(std::make_unique<impl>()) {
    for (const auto& re : regexes) {
        int err = 0;
        PCRE2_SIZE err_off = 0;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw error("pre-tokenizer regex does not compile at offset " + std::to_string(err_off) + ": " +
                        reinterpret_cast<const char*>(msg) + " (" + re + ")");
        }
        impl_->codes.push_back(code);
        impl_->jit_ok.push_back(pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0);
    }
}

regex_splitter::~regex_splitter() = default;

namespace {

// Owns the per-call PCRE2 state (match data cannot be shared between threads).
struct match_state {
    pcre2_match_data* data = nullptr;
    pcre2_match_context* ctx = nullptr;
    pcre2_jit_stack* stack = nullptr;
    match_state() {
        data = pcre2_match_data_create(1, nullptr);
        ctx = pcre2_match_context_create(nullptr);
        // Long runs of whitespace or letters can need more than the 32 KiB default JIT stack.
        stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
        if (!data || !ctx || !stack) throw error("out of memory creating PCRE2 match state");
        pcre2_jit_stack_assign(ctx, nullptr, stack);
    }
    ~match_state() {
        pcre2_jit_stack_free(stack);
        pcre2_match_context_free(ctx);
        pcre2_match_data_free(data);
    }
};

}  // namespace

std::vector<std::string_view> regex_splitter::split(std::string_view text) const {
    std::vector<std::string_view> pieces;
    if (text.empty()) return pieces;
    pieces.push_back(text);
    match_state ms;
    std::vector<std::string_view> next;
    for (size_t r = 0; r < impl_->codes.size(); ++r) {
        pcre2_code* code = impl_->codes[r];
        const bool jit = impl_->jit_ok[r];
        next.clear();
        next.reserve(pieces.size() * 2);
        for (std::string_view piece : pieces) {
            const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
            size_t start = 0;  // end of the last match: text before the next match is a gap
            size_t pos = 0;
            while (pos <= piece.size()) {
                const int rc = jit ? pcre2_jit_match(code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK, ms.data, ms.ctx)
                                   : pcre2_match(code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK, ms.data, ms.ctx);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    throw error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(msg));
                }
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ms.data);
                const size_t m_begin = ov[0], m_end = ov[1];
                if (m_end == m_begin) {
                    // An empty match splits nothing; step over one character and retry.
                    pos = m_begin + 1;
                    while (pos < piece.size() && (static_cast<uint8_t>(piece[pos]) & 0xC0) == 0x80) ++pos;
                    continue;
                }
                if (m_begin > start) next.push_back(piece.substr(start, m_begin - start));
                next.push_back(piece.substr(m_begin, m_end - m_begin));
                start = pos = m_end;
            }
            if (start < piece.size()) next.push_back(piece.substr(start));
        }
        pieces.swap(next);
    }
    return pieces;
}

}  // namespace edgellm::tok_detail
