// SentencePiece vocabularies for the HF -> GGUF converters (Gemma, Gemma 2, Gemma 3, Phi-3):
// tokenizer.model is a protobuf ModelProto, read here with a minimal wire-format reader (only the
// `pieces` field is used: piece text, score, type), then the tokens, scores and types are
// completed as convert_hf_to_gguf.py's _create_vocab_sentencepiece (Gemma) or
// Phi3MiniModel.set_vocab (Phi-3) complete them from added_tokens.json, tokenizer_config.json's
// added_tokens_decoder and (Phi-3) tokenizer.json's added_tokens.
#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "convert/hf_common.h"
#include "core/error.h"

namespace edgellm::convert::detail {
namespace {

namespace fs = std::filesystem;
using gguf::value;
using gguf::value_type;
using nlohmann::json;

struct pb_reader {
    const uint8_t* p;
    const uint8_t* end;
    std::string where;

    [[noreturn]] void fail(const char* what) const {
        throw error(fmt::format("{}: not a SentencePiece model ({})", where, what));
    }
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p >= end) fail("truncated varint");
            const uint8_t b = *p++;
            v |= static_cast<uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        fail("varint too long");
    }
    // Skips a field of wire type `wt`; returns a length-delimited field's bytes as {ptr, size}.
    std::pair<const uint8_t*, size_t> field(uint32_t wt) {
        switch (wt) {
            case 0:
                varint();
                return {nullptr, 0};
            case 1:
                if (end - p < 8) fail("truncated fixed64");
                p += 8;
                return {p - 8, 8};
            case 5:
                if (end - p < 4) fail("truncated fixed32");
                p += 4;
                return {p - 4, 4};
            case 2: {
                const uint64_t n = varint();
                if (n > static_cast<uint64_t>(end - p)) fail("a field runs past the end");
                p += n;
                return {p - n, static_cast<size_t>(n)};
            }
            default:
                fail("unknown wire type");
        }
    }
};

}  // namespace

std::vector<spm_piece> read_spm_model(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(fmt::format("{} is missing (needed to convert the model)", path.string()));
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    pb_reader r{reinterpret_cast<const uint8_t*>(data.data()),
                reinterpret_cast<const uint8_t*>(data.data()) + data.size(), path.string()};
    std::vector<spm_piece> pieces;
    while (r.p < r.end) {
        const uint64_t key = r.varint();
        const auto [ptr, n] = r.field(static_cast<uint32_t>(key & 7));
        if ((key >> 3) != 1 || (key & 7) != 2) continue;  // ModelProto.pieces = 1
        pb_reader s{ptr, ptr + n, path.string()};
        spm_piece pc;
        while (s.p < s.end) {
            const uint64_t k = s.varint();
            const uint32_t wt = static_cast<uint32_t>(k & 7);
            const uint64_t num = k >> 3;
            if (num == 3 && wt == 0) {  // type
                pc.type = static_cast<int32_t>(s.varint());
                continue;
            }
            const auto [fp, fn] = s.field(wt);
            if (num == 1 && wt == 2)
                pc.text.assign(reinterpret_cast<const char*>(fp), fn);
            else if (num == 2 && wt == 5)
                std::memcpy(&pc.score, fp, 4);
        }
        pieces.push_back(std::move(pc));
    }
    if (pieces.empty()) r.fail("no pieces");
    return pieces;
}

int64_t write_spm_vocab(gguf::writer& w, const fs::path& dir, const json& cfg,
                        spm_flavour flavour) {
    const std::vector<spm_piece> pieces = read_spm_model(dir / "tokenizer.model");
    const int64_t n_vocab = cfg.contains("vocab_size") && cfg["vocab_size"].is_number_integer()
                                ? cfg["vocab_size"].get<int64_t>()
                                : static_cast<int64_t>(pieces.size());
    std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
    std::vector<float> scores(static_cast<size_t>(n_vocab), -10000.0f);
    std::vector<int32_t> types(static_cast<size_t>(n_vocab), unused);
    for (int64_t i = 0; i < n_vocab; ++i)
        tokens[static_cast<size_t>(i)] = fmt::format("[PAD{}]", i);
    for (size_t i = 0; i < pieces.size() && i < tokens.size(); ++i) {
        tokens[i] = pieces[i].text;
        scores[i] = pieces[i].score;
        // SentencePieceProcessor's IsUnknown / IsControl / IsUnused / IsByte; anything else
        // (user-defined pieces included) is normal, as the converter writes it.
        const int32_t t = pieces[i].type;
        types[i] = t == unknown || t == control || t == unused || t == byte ? t : normal;
    }
    const auto in_range = [&](int64_t id) { return id >= 0 && id < n_vocab; };
    const json added = read_json(dir / "added_tokens.json", false);
    if (added.is_object())
        for (const auto& [text, id] : added.items())
            if (id.is_number_integer() && in_range(id.get<int64_t>())) {
                const size_t i = static_cast<size_t>(id.get<int64_t>());
                tokens[i] = text;
                scores[i] = -1000.0f;
                types[i] = user_defined;
            }
    const json tok_cfg = read_json(dir / "tokenizer_config.json", false);
    const json tok = read_json(dir / "tokenizer.json", false);
    const auto looks_special = [](const std::string& t) {
        return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
               (t.starts_with("<|") && t.ends_with("|>")) ||
               (t.starts_with("<\xEF\xBD\x9C") && t.ends_with("\xEF\xBD\x9C>")) ||
               (t.starts_with("<unused") && t.ends_with(">"));
    };
    const auto add = [&](int64_t id, std::string text, bool special) {
        if (!in_range(id)) return;
        const size_t i = static_cast<size_t>(id);
        if (flavour == spm_flavour::base) {
            special = special || looks_special(text);
            if (!special) {  // pre-normalised user-defined spaces: U+2581 -> ' '
                std::string spaced;
                for (size_t p = 0; p < text.size();) {
                    if (text.compare(p, 3, "\xE2\x96\x81") == 0) {
                        spaced += ' ';
                        p += 3;
                    } else {
                        spaced += text[p++];
                    }
                }
                text = std::move(spaced);
            }
        }
        tokens[i] = std::move(text);
        scores[i] = -1000.0f;
        types[i] = special ? control : user_defined;
    };
    if (tok_cfg.is_object() && tok_cfg.contains("added_tokens_decoder") &&
        tok_cfg["added_tokens_decoder"].is_object())
        for (const auto& [id, d] : tok_cfg["added_tokens_decoder"].items())
            add(std::stoll(id), d.value("content", ""), d.value("special", false));
    if (flavour == spm_flavour::phi3 && tok.is_object() && tok.contains("added_tokens"))
        for (const json& a : tok["added_tokens"])
            add(a.value("id", int64_t{-1}), a.value("content", ""), a.value("special", false));

    std::vector<value> tv, sv, ty;
    for (size_t i = 0; i < tokens.size(); ++i) {
        tv.push_back(value::make_string(tokens[i]));
        sv.push_back(value::make_f32(scores[i]));
        ty.push_back(value::make_i32(types[i]));
    }
    w.set("tokenizer.ggml.model", value::make_string("llama"));
    w.set("tokenizer.ggml.pre", value::make_string("default"));
    w.set("tokenizer.ggml.tokens", value::make_array(value_type::string, std::move(tv)));
    w.set("tokenizer.ggml.scores", value::make_array(value_type::f32, std::move(sv)));
    w.set("tokenizer.ggml.token_type", value::make_array(value_type::i32, std::move(ty)));
    write_special_tokens(w, dir, cfg, tokens);
    return n_vocab;
}

}  // namespace edgellm::convert::detail
