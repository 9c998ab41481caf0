# `edgellm convert` on decoder folders (LlamaForCausalLM, Qwen2ForCausalLM): a small random-weight
# Hugging Face folder is written here (config.json, model.safetensors by hand, tokenizer.json and
# tokenizer_config.json rebuilt from a real vocab in ../shared/tokenizer), converted, and checked:
# the logits of edgellm and of llama.cpp on the converted GGUF both match a numpy forward pass of
# the HF model (HF's rotate-half RoPE layout, so a wrong Q/K permutation or a dropped bias shows),
# and edgellm's token ids equal the `tokenizers` package's on the vocab's reference strings.
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from hf_folder_util import assert_close_to_reference, field, logits_both_engines, write_tokenizer

np = pytest.importorskip("numpy")

BIN = os.environ.get("EDGELLM_BIN")
TOOL = os.environ.get("EDGELLM_TOOL_engine_logits")
TOK_TOOL = os.environ.get("EDGELLM_TOOL_tokenize_tool")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
pytestmark = pytest.mark.skipif(not BIN, reason="EDGELLM_BIN not set (run through ctest)")

QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
CASES = {
    "qwen2": dict(hf="Qwen2ForCausalLM", vocab="ggml-vocab-qwen2.gguf", regex=QWEN2_RE, nfc=True, ignore_merges=False,
                  tied=True, bias=True, theta=1000000.0),
    "llama": dict(hf="LlamaForCausalLM", vocab="ggml-vocab-llama-bpe.gguf", regex=LLAMA3_RE, nfc=False,
                  ignore_merges=True, tied=False, bias=False, theta=500000.0),
}
N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_LAYER = 64, 4, 2, 96, 2
IDS = [1, 300, 301, 302, 5000, 17, 42, 1234, 999, 7]


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def write_folder(folder, case, seed=3):
    c = CASES[case]
    n_vocab = write_tokenizer(folder, SHARED / "tokenizer" / c["vocab"], c["regex"], c["nfc"], c["ignore_merges"])
    cfg = {"architectures": [c["hf"]], "hidden_size": N_EMBD, "intermediate_size": N_FF,
           "num_hidden_layers": N_LAYER, "num_attention_heads": N_HEAD, "num_key_value_heads": N_HEAD_KV,
           "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": c["theta"], "vocab_size": n_vocab,
           "tie_word_embeddings": c["tied"], "hidden_act": "silu"}
    (folder / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(seed)
    hd = N_EMBD // N_HEAD
    mat = lambda rows, cols: rng.normal(0, 1 / np.sqrt(cols), (rows, cols))  # noqa: E731
    w = {"model.embed_tokens.weight": rng.normal(0, 1, (n_vocab, N_EMBD)),
         "model.norm.weight": 1 + 0.1 * rng.normal(size=N_EMBD)}
    if not c["tied"]:
        w["lm_head.weight"] = mat(n_vocab, N_EMBD)
    for il in range(N_LAYER):
        p = f"model.layers.{il}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=N_EMBD)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=N_EMBD)
        for name, rows in (("q_proj", N_HEAD * hd), ("k_proj", N_HEAD_KV * hd), ("v_proj", N_HEAD_KV * hd)):
            w[p + f"self_attn.{name}.weight"] = mat(rows, N_EMBD)
            if c["bias"]:
                w[p + f"self_attn.{name}.bias"] = 0.5 * rng.normal(size=rows)
        w[p + "self_attn.o_proj.weight"] = mat(N_EMBD, N_HEAD * hd)
        w[p + "mlp.gate_proj.weight"] = mat(N_FF, N_EMBD)
        w[p + "mlp.up_proj.weight"] = mat(N_FF, N_EMBD)
        w[p + "mlp.down_proj.weight"] = mat(N_EMBD, N_FF)
    write_safetensors(folder / "model.safetensors", w)
    return cfg, w


def reference_logits(cfg, w, ids):
    """The HF model's forward pass (transformers' LlamaModel / Qwen2Model maths) in float64."""
    n, hd = len(ids), N_EMBD // N_HEAD
    rms = lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg["rms_norm_eps"]) * g  # noqa: E731
    inv = 1.0 / cfg["rope_theta"] ** (np.arange(0, hd, 2) / hd)
    ang = np.outer(np.arange(n), inv)
    cos, sin = np.cos(np.concatenate([ang, ang], 1)), np.sin(np.concatenate([ang, ang], 1))

    def rope(x):  # [heads, n, hd], rotate_half layout
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    x = w["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for il in range(N_LAYER):
        p = f"model.layers.{il}."
        h = rms(x, w[p + "input_layernorm.weight"])
        proj = lambda name: h @ w[p + f"self_attn.{name}.weight"].T + w.get(p + f"self_attn.{name}.bias", 0)  # noqa
        q = rope(proj("q_proj").reshape(n, N_HEAD, hd).transpose(1, 0, 2))
        k = rope(proj("k_proj").reshape(n, N_HEAD_KV, hd).transpose(1, 0, 2))
        v = proj("v_proj").reshape(n, N_HEAD_KV, hd).transpose(1, 0, 2)
        k, v = np.repeat(k, N_HEAD // N_HEAD_KV, 0), np.repeat(v, N_HEAD // N_HEAD_KV, 0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = x + (s @ v).transpose(1, 0, 2).reshape(n, -1) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        g = h @ w[p + "mlp.gate_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    out = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms(x, w["model.norm.weight"]) @ out.T


@pytest.fixture(scope="module", params=sorted(CASES))
def converted(request, tmp_path_factory):
    case = request.param
    if not (SHARED / "tokenizer" / CASES[case]["vocab"]).exists():
        pytest.skip(f"shared vocab {CASES[case]['vocab']} missing")
    folder = tmp_path_factory.mktemp(case) / "hf"
    cfg, w = write_folder(folder, case)
    out = folder.parent / f"{case}.gguf"
    r = subprocess.run([BIN, "convert", str(folder), str(out), "--outtype", "f32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return case, folder, out, cfg, w


def test_converted_decoder_logits_match_the_hf_forward_pass_and_llama_cpp(converted):
    llama_cpp = pytest.importorskip("llama_cpp")
    if not TOOL or not os.path.exists(TOOL):
        pytest.skip("EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")
    case, folder, out, cfg, w = converted
    ref = reference_logits(cfg, w, IDS)
    got, lcpp = logits_both_engines(TOOL, out, IDS, folder.parent)
    assert_close_to_reference(case, ref, (("edgellm", got), ("llama.cpp", lcpp)))


def test_converted_tokenizer_matches_the_tokenizers_package(converted):
    tokenizers = pytest.importorskip("tokenizers")
    case, folder, out, cfg, w = converted
    tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    inp = SHARED / "tokenizer" / (CASES[case]["vocab"] + ".inp")
    if not TOK_TOOL or not os.path.exists(TOK_TOOL):
        pytest.skip("EDGELLM_TOOL_tokenize_tool (tests/tools/tokenize_tool.cpp) is not built")
    texts = inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    records = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    r = subprocess.run([TOK_TOOL, str(out), "0", "0"], input=records, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().split("\n")
    for i, text in enumerate(texts):
        want = tok.encode(text, add_special_tokens=False).ids
        assert [int(x) for x in lines[2 * i].split()] == want, repr(text)
    meta = out
    assert field(meta, "general.architecture") == case
    assert field(meta, "tokenizer.ggml.pre") == ("qwen2" if case == "qwen2" else "llama-bpe")
    src = SHARED / "tokenizer" / CASES[case]["vocab"]
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.bos_token_id", "tokenizer.chat_template"):
        assert field(meta, key) == field(src, key), key


def test_rope_theta_from_transformers_5_rope_parameters(tmp_path):
    """transformers 5 writes rope_parameters {rope_theta, rope_type} and no top-level rope_theta:
    convert reads the theta from there (it fell back to 10000 before), and refuses a scaled type."""
    if not (SHARED / "tokenizer" / CASES["llama"]["vocab"]).exists():
        pytest.skip(f"shared vocab {CASES['llama']['vocab']} missing")
    folder = tmp_path / "hf"
    cfg, _ = write_folder(folder, "llama")
    theta = cfg.pop("rope_theta")
    cfg["rope_parameters"] = {"rope_theta": theta, "rope_type": "default"}
    (folder / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "m.gguf"
    r = subprocess.run([BIN, "convert", str(folder), str(out), "--outtype", "f32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert field(out, "llama.rope.freq_base") == theta == 500000.0
    cfg["rope_parameters"] = {"rope_theta": theta, "rope_type": "llama3", "factor": 8.0}
    (folder / "config.json").write_text(json.dumps(cfg))
    r = subprocess.run([BIN, "convert", str(folder), str(tmp_path / "n.gguf"), "--outtype", "f32"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "rope_type 'llama3'" in r.stderr, r.stderr
