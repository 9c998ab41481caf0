"""The Python backends' test model: one tiny random-weight Llama in the three forms edgellm's
backends read, with nothing downloaded.

  hf/    a Hugging Face folder written by transformers (LlamaForCausalLM from a small config,
         save_pretrained in safetensors) with a tokenizer built from the shared Llama 3 vocab
         (../shared/tokenizer/ggml-vocab-llama-bpe.gguf) and saved by AutoTokenizer beside it;
  model.gguf   the same weights through `edgellm convert --outtype f32`;
  onnx/  an ONNX Runtime GenAI model built from hf/ by onnxruntime-genai's model builder
         (`python -m onnxruntime_genai.models.builder -i hf -o onnx -p fp32 -e cpu`).

F32 everywhere, so the native engine, Transformers and ONNX Runtime compute the same numbers up to
float rounding. The weights are scaled so that the logits are spread (std ~2) and greedy choices
are rarely near-ties.

    python3 tests/python/backend_models.py OUT_DIR [--edgellm build/bin/edgellm]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hf_folder_util import write_tokenizer  # noqa: E402

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB = "ggml-vocab-llama-bpe.gguf"
CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=500000.0,
              tie_word_embeddings=False, hidden_act="silu")
SEED = 31


def default_shared():
    return Path(os.environ.get("EDGELLM_SHARED", HERE.parents[2] / "shared"))


def write_hf(folder, shared):
    """The Hugging Face folder: tokenizer first (its size sets the vocab), then the model."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    n_vocab = write_tokenizer(folder, Path(shared) / "tokenizer" / VOCAB, LLAMA3_RE, ignore_merges=True,
                              bos_template=True)
    tok = AutoTokenizer.from_pretrained(folder)
    cfg = LlamaConfig(vocab_size=n_vocab, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      torch_dtype="float32", **CONFIG)
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.normal_(0, 1)
            else:  # projections: unit-variance outputs; lm_head x2 to spread the logits
                p.normal_(0, (2.0 if name.startswith("lm_head") else 1.0) / p.shape[1] ** 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return cfg


def write_gguf(folder, out, edgellm):
    r = subprocess.run([edgellm, "convert", str(folder), str(out), "--outtype", "f32"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"edgellm convert failed: {r.stderr}")


def write_onnx(folder, out, cache):
    r = subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(folder), "-o", str(out),
                        "-p", "fp32", "-e", "cpu", "-c", str(cache)], capture_output=True, text=True)
    if r.returncode != 0 or not (Path(out) / "genai_config.json").exists():
        raise RuntimeError(f"onnxruntime_genai model builder failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-4000:]}")


def make(out_dir, edgellm, shared=None, forms=("hf", "gguf", "onnx")):
    """Writes the forms asked for under out_dir; returns {form: path} and the seconds each took."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"hf": out_dir / "hf", "gguf": out_dir / "model.gguf", "onnx": out_dir / "onnx"}
    seconds = {}
    t = time.perf_counter()
    write_hf(paths["hf"], shared or default_shared())
    seconds["hf"] = time.perf_counter() - t
    if "gguf" in forms:
        t = time.perf_counter()
        write_gguf(paths["hf"], paths["gguf"], edgellm)
        seconds["gguf"] = time.perf_counter() - t
    if "onnx" in forms:
        t = time.perf_counter()
        write_onnx(paths["hf"], paths["onnx"], out_dir / "builder-cache")
        seconds["onnx"] = time.perf_counter() - t
    return {k: v for k, v in paths.items() if k in forms}, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--edgellm", default=os.environ.get("EDGELLM_BIN", "build/bin/edgellm"))
    ap.add_argument("--shared", default=None, help="the shared folder (default: $EDGELLM_SHARED or ../shared)")
    a = ap.parse_args()
    paths, seconds = make(a.out_dir, a.edgellm, a.shared)
    print(json.dumps({k: str(v) for k, v in paths.items()} | {"seconds": seconds}, indent=2))


if __name__ == "__main__":
    main()
