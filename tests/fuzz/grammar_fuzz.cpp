// Fuzz target: any bytes as a GBNF grammar (or, starting with '{', a JSON schema) followed by a
// NUL and text to match must parse or fail with a grammar / schema error, and the matcher and
// the token mask must then run on the text without crashing, hanging or exhausting memory.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sampling/grammar_matcher.h"
#include "sampling/json_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace edgellm::sampling;
    static const auto vocab = [] {
        std::vector<std::string> pieces = {"{", "}", "\"", "a", "ab", "\xc3", "\xa9", " ", "\n", "1", "null", ""};
        return std::make_shared<const token_vocab>(pieces, std::vector<int32_t>{11});
    }();
    const std::string in(reinterpret_cast<const char*>(data), size);
    const size_t nul = in.find('\0');
    const std::string spec = in.substr(0, nul);
    const std::string text = nul == std::string::npos ? std::string() : in.substr(nul + 1);
    try {
        std::shared_ptr<const grammar> g;
        if (!spec.empty() && spec[0] == '{') {
            nlohmann::ordered_json schema;
            try {
                schema = nlohmann::ordered_json::parse(spec);
            } catch (const nlohmann::json::exception&) {
                return 0;
            }
            g = json_schema_to_grammar(schema);
        } else {
            g = parse_grammar(spec);
        }
        grammar_matcher m(g);
        std::vector<uint8_t> allowed;
        std::unique_ptr<mask_scratch> scratch;
        for (char c : text) {
            allowed_tokens(m, *vocab, allowed, scratch);
            if (!m.accept(std::string(1, c))) break;
        }
        (void)m.can_end();
    } catch (const edgellm::error&) {
    }
    return 0;
}
