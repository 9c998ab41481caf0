// `edgellm convert`: a Hugging Face model folder to GGUF (see convert/hf_convert.h).
#include <fmt/format.h>

#include <memory>
#include <string>

#include "command.h"
#include "convert/hf_convert.h"

namespace edgellm::cli {
namespace {

struct convert_flags {
    std::string hf_dir;
    std::string out;
    std::string outtype = "f16";
};

void setup_convert(CLI::App& app) {
    auto fl = std::make_shared<convert_flags>();
    auto* cmd =
        app.add_subcommand("convert", "Convert a Hugging Face model folder (safetensors) to GGUF");
    cmd->footer(
        "Examples:\n"
        "  edgellm convert ./all-MiniLM-L6-v2 minilm.gguf\n"
        "  edgellm convert ./all-MiniLM-L6-v2 minilm-q8.gguf --outtype q8_0\n"
        "The folder needs config.json, model.safetensors (or shards with "
        "model.safetensors.index.json)\n"
        "and tokenizer.json (tokenizer.model for SentencePiece models). Architectures: "
        "BertModel /\n"
        "BertForMaskedLM / BertForSequenceClassification (BERT, MiniLM, BGE), DistilBertModel /\n"
        "DistilBertForSequenceClassification, LlamaForCausalLM / MistralForCausalLM, "
        "Qwen2ForCausalLM,\n"
        "Qwen3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, "
        "Phi3ForCausalLM.\n"
        "Tensor names and metadata match llama.cpp's convert_hf_to_gguf.py. The file is written\n"
        "to OUT.tmp and renamed, so a failed conversion leaves nothing at OUT.");
    cmd->add_option("hf_dir", fl->hf_dir, "Hugging Face model folder")->required();
    cmd->add_option("out", fl->out, "Output GGUF path")->required();
    cmd->add_option("--outtype", fl->outtype,
                    "Type of the weight matrices: f32, f16 (default), bf16, q8_0");
    cmd->callback([fl] {
        convert::convert_options o;
        o.outtype = convert::parse_outtype(fl->outtype);
        const convert::convert_report r = convert::convert_hf(fl->hf_dir, fl->out, o);
        fmt::print("converted {} ({}) -> {}: {} tensors, {:.1f} MiB, {}\n", fl->hf_dir,
                   r.hf_architecture, fl->out, r.n_tensors, double(r.n_bytes) / (1024.0 * 1024.0),
                   fl->outtype);
        if (!r.skipped.empty())
            fmt::print(
                "skipped {} tensors the GGUF model does not use (pooler, MLM head, rotary "
                "tables)\n",
                r.skipped.size());
    });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("convert", 82, setup_convert);

}  // namespace edgellm::cli
