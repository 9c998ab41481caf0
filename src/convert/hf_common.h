// Helpers shared by the HF -> GGUF converters (hf_convert.cpp: BERT and the dispatch;
// hf_decoder.cpp: llama / qwen2): JSON files, config fields, special tokens, tensor writing.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "convert/hf_convert.h"
#include "convert/safetensors.h"
#include "gguf/gguf.h"

namespace edgellm::convert::detail {

// The file as JSON; absent: throws naming it when required, else returns null.
nlohmann::json read_json(const std::filesystem::path& p, bool required);
// A positive integer field of config.json (throws naming it).
int64_t config_int(const nlohmann::json& cfg, const char* key);

// llama.cpp's gguf.TokenType.
enum token_type : int32_t {
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6
};

// The token id of tokenizer_config.json's `key` ("bos_token": "<s>" or {"content": "<s>"}),
// looked up in `vocab` ({text: id}) or the added tokens.
std::optional<int32_t> special_id(const nlohmann::json& tok_cfg, const nlohmann::json& tok_json,
                                  const char* key);

// Adds every tensor of `st` whose name `map` turns into a GGUF name ("" skips it: listed in
// rep.skipped), converted to the type tensor_type picks; `transform` (may be null) rewrites a
// tensor's f32 data first (llama's Q/K row permutation).
void add_tensors(
    gguf::writer& w, const safetensors_set& st,
    const std::function<std::string(const std::string&)>& map,
    const std::function<void(const std::string& gguf_name, std::vector<float>& data)>& transform,
    ggml_type outtype, convert_report& rep,
    const std::function<int64_t(const std::string& gguf_name)>& max_rows = nullptr);

// Token strings and types from tokenizer.json: model.vocab entries are normal tokens,
// added_tokens control (special) or user-defined ones. tokens/types are sized to the vocabulary
// already (types preset to unused); a vocab id outside it is an error naming `where`. Returns
// which ids were filled.
std::vector<bool> fill_vocab(const nlohmann::json& tok, const nlohmann::json& vocab,
                             const std::string& where, std::vector<std::string>& tokens,
                             std::vector<int32_t>& types);

// general.file_type of an --outtype.
uint32_t file_type_of(ggml_type t);

// The special token ids as gguf-py's SpecialVocab finds them for a decoder: tokenizer_config.json's
// bos/eos/unk/pad token names looked up in `tokens` (the GGUF token list), else config.json's
// *_token_id; add_bos_token / add_eos_token; the chat template (tokenizer_config.json, else
// chat_template.jinja).
void write_special_tokens(gguf::writer& w, const std::filesystem::path& dir,
                          const nlohmann::json& cfg, const std::vector<std::string>& tokens);

// One piece of a SentencePiece tokenizer.model.
struct spm_piece {
    std::string text;
    float score = 0.0f;
    int32_t type = normal;  // sentencepiece's Type: 1 normal ... 6 byte
};
// The pieces of a tokenizer.model (protobuf ModelProto); throws naming the file when it is not one.
std::vector<spm_piece> read_spm_model(const std::filesystem::path& path);

// _create_vocab_sentencepiece (base: Llama, Gemma) and Phi3MiniModel.set_vocab complete a
// SentencePiece vocabulary slightly differently.
enum class spm_flavour { base, phi3 };
// Writes tokenizer.ggml.model "llama", tokens, scores, types (padded to config.json's vocab_size
// with [PADn]) and the special tokens; returns the vocabulary size written.
int64_t write_spm_vocab(gguf::writer& w, const std::filesystem::path& dir,
                        const nlohmann::json& cfg, spm_flavour flavour);

// The HF architectures convert_decoder handles (for the unknown-architecture message).
const std::vector<std::string>& decoder_architectures();

// The decoder families (hf_decoder.cpp): true when `hf_arch` is one (and the file was written).
bool convert_decoder(const std::filesystem::path& dir, const nlohmann::json& cfg,
                     const std::string& hf_arch, const std::string& out_path,
                     const convert_options& o, convert_report& rep);

}  // namespace edgellm::convert::detail
