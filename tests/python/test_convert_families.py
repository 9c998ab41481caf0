# `edgellm convert` on the decoder families added after llama / qwen2: Qwen3ForCausalLM,
# GemmaForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM. For each, a small
# random-weight Hugging Face folder is written here (config.json, model.safetensors by hand, and a
# tokenizer: tokenizer.json for Qwen3's byte-level BPE, a SentencePiece tokenizer.model protobuf
# for Gemma / Phi-3, all rebuilt from the real vocabs in ../shared/tokenizer), converted, and the
# logits of edgellm and of llama.cpp on the GGUF are both checked against a numpy forward pass of
# the HF model written here from transformers' maths: Qwen3's per-head q_norm / k_norm, Gemma's
# (1 + w) RMSNorm, sqrt(n_embd) embedding scale and GeGLU, Gemma 2's extra norms and soft caps,
# Gemma 3's q/k norms and per-layer RoPE bases, Phi-3's fused qkv and gate_up matrices. A wrong
# +1, a missed norm or a swapped half shows as a logit mismatch on both engines.
import functools
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from hf_folder_util import assert_close_to_reference, logits_both_engines
from test_convert_decoder import field, write_safetensors

np = pytest.importorskip("numpy")

BIN = os.environ.get("EDGELLM_BIN")
TOOL = os.environ.get("EDGELLM_TOOL_engine_logits")
TOK_TOOL = os.environ.get("EDGELLM_TOOL_tokenize_tool")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
pytestmark = pytest.mark.skipif(not BIN, reason="EDGELLM_BIN not set (run through ctest)")

N_EMBD, N_HEAD, N_HEAD_KV, N_FF, HEAD_DIM = 64, 4, 2, 96, 32
IDS = [1, 300, 301, 302, 5000, 17, 42, 1234, 999, 7, 31000, 12]
CASES = {
    "qwen3": dict(hf="Qwen3ForCausalLM", vocab="ggml-vocab-gpt-2.gguf", layers=2),
    "gemma": dict(hf="GemmaForCausalLM", vocab="ggml-vocab-llama-spm.gguf", layers=2),
    "gemma2": dict(hf="Gemma2ForCausalLM", vocab="ggml-vocab-llama-spm.gguf", layers=2),
    # 6 layers: layers 0-4 slide (RoPE base 10000), layer 5 is global (rope_theta).
    "gemma3": dict(hf="Gemma3ForCausalLM", vocab="ggml-vocab-llama-spm.gguf", layers=6),
    "phi3": dict(hf="Phi3ForCausalLM", vocab="ggml-vocab-phi-3.gguf", layers=2),
    # Llama 2 / Mistral folders ship a SentencePiece tokenizer.model, which the converter prefers.
    "mistral": dict(hf="MistralForCausalLM", vocab="ggml-vocab-llama-spm.gguf", layers=2, arch="llama"),
}


def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def write_spm_model(path, pieces):
    """A SentencePiece ModelProto with only its `pieces` (text, score, type), protobuf by hand."""
    out = bytearray()
    for text, score, typ in pieces:
        t = text.encode("utf-8")
        body = b"\x0a" + _varint(len(t)) + t + b"\x15" + struct.pack("<f", score) + b"\x18" + _varint(typ)
        out += b"\x0a" + _varint(len(body)) + body
    Path(path).write_bytes(bytes(out))


def write_tokenizer(folder, case):
    """Returns (n_vocab, the vocab GGUF's tokens) after writing the tokenizer files of `case`."""
    r = SHARED / "tokenizer" / CASES[case]["vocab"]
    tokens, types = field(r, "tokenizer.ggml.tokens"), field(r, "tokenizer.ggml.token_type")
    tcfg = {"add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token"))}
    for kind, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown")):
        i = field(r, f"tokenizer.ggml.{key}_token_id")
        if i is not None:
            tcfg[f"{kind}_token"] = tokens[i]
    if case == "qwen3":  # GPT-2's byte-level BPE: a ByteLevel pre-tokenizer with its own regex
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        vocab = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 1}
        added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": ty == 3} for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (3, 4)]
        tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
               "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
               "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                         "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                         "vocab": vocab, "merges": list(field(r, "tokenizer.ggml.merges"))}}
        (folder / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    elif case == "phi3":
        # Phi-3 ships Llama 2's SentencePiece model (32000 pieces) and its chat tokens as
        # tokenizer.json added tokens; <unk>, <s> are special added tokens too, </s> is not.
        spm = SHARED / "tokenizer" / "ggml-vocab-llama-spm.gguf"
        s_tok, s_sc, s_ty = (field(spm, k) for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                                      "tokenizer.ggml.token_type"))
        write_spm_model(folder / "tokenizer.model", list(zip(s_tok, s_sc, s_ty)))
        added = [{"id": i, "content": t, "special": ty == 3} for i, (t, ty) in enumerate(zip(tokens, types))
                 if ty in (3, 4)]
        (folder / "tokenizer.json").write_text(json.dumps({"added_tokens": added}), encoding="utf-8")
        tcfg["chat_template"] = field(r, "tokenizer.chat_template")
        tcfg["pad_token"] = tokens[field(r, "tokenizer.ggml.padding_token_id")]
    else:
        scores = field(r, "tokenizer.ggml.scores")
        write_spm_model(folder / "tokenizer.model", list(zip(tokens, scores, types)))
    (folder / "tokenizer_config.json").write_text(json.dumps(tcfg), encoding="utf-8")
    return len(tokens)


def write_folder(folder, case, seed=5):
    c = CASES[case]
    folder.mkdir(parents=True, exist_ok=True)
    n_vocab = write_tokenizer(folder, case)
    n_layer = c["layers"]
    gemma = case.startswith("gemma")
    cfg = {"architectures": [c["hf"]], "hidden_size": N_EMBD, "intermediate_size": N_FF,
           "num_hidden_layers": n_layer, "num_attention_heads": N_HEAD, "num_key_value_heads": N_HEAD_KV,
           "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "vocab_size": n_vocab,
           "tie_word_embeddings": gemma or case == "qwen3", "hidden_act": "gelu_pytorch_tanh" if gemma else "silu"}
    hd = N_EMBD // N_HEAD
    if case in ("qwen3", "gemma", "gemma2", "gemma3"):
        cfg["head_dim"] = hd = HEAD_DIM
    cfg["rope_theta"] = {"qwen3": 1000000.0, "gemma": 10000.0, "gemma2": 10000.0, "gemma3": 1000000.0,
                         "phi3": 10000.0, "mistral": 1000000.0}[case]
    if gemma:
        cfg["hidden_activation"] = "gelu_pytorch_tanh"
        cfg["query_pre_attn_scalar"] = hd
    if case == "gemma2":
        cfg.update(attn_logit_softcapping=5.0, final_logit_softcapping=3.0, sliding_window=512)
    if case == "gemma3":
        cfg.update(sliding_window=512, sliding_window_pattern=6, rope_local_base_freq=10000.0,
                   rope_scaling=None, final_logit_softcapping=None, attn_logit_softcapping=None)
    if case == "phi3":
        cfg.update(original_max_position_embeddings=512, rope_scaling=None, sliding_window=2047)
    (folder / "config.json").write_text(json.dumps(cfg))

    rng = np.random.default_rng(seed)
    mat = lambda rows, cols: rng.normal(0, 1 / np.sqrt(cols), (rows, cols))  # noqa: E731
    # HF Gemma norms hold w with the scale (1 + w); the others hold the scale itself.
    norm = (lambda n: 0.1 * rng.normal(size=n)) if gemma else (lambda n: 1 + 0.1 * rng.normal(size=n))  # noqa
    w = {"model.embed_tokens.weight": rng.normal(0, 1 if not gemma else 0.125, (n_vocab, N_EMBD)),
         "model.norm.weight": norm(N_EMBD)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(n_vocab, N_EMBD)
    for il in range(n_layer):
        p = f"model.layers.{il}."
        w[p + "input_layernorm.weight"] = norm(N_EMBD)
        w[p + "post_attention_layernorm.weight"] = norm(N_EMBD)
        if case in ("gemma2", "gemma3"):
            w[p + "pre_feedforward_layernorm.weight"] = norm(N_EMBD)
            w[p + "post_feedforward_layernorm.weight"] = norm(N_EMBD)
        if case in ("qwen3", "gemma3"):
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        q, k, v = mat(N_HEAD * hd, N_EMBD), mat(N_HEAD_KV * hd, N_EMBD), mat(N_HEAD_KV * hd, N_EMBD)
        gate, up = mat(N_FF, N_EMBD), mat(N_FF, N_EMBD)
        if case == "phi3":
            w[p + "self_attn.qkv_proj.weight"] = np.concatenate([q, k, v])
            w[p + "mlp.gate_up_proj.weight"] = np.concatenate([gate, up])
        else:
            w[p + "self_attn.q_proj.weight"], w[p + "self_attn.k_proj.weight"] = q, k
            w[p + "self_attn.v_proj.weight"] = v
            w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"] = gate, up
        w[p + "self_attn.o_proj.weight"] = mat(N_EMBD, N_HEAD * hd)
        w[p + "mlp.down_proj.weight"] = mat(N_EMBD, N_FF)
    write_safetensors(folder / "model.safetensors", w)
    return cfg, w


def reference_logits(case, cfg, w, ids):
    """The HF model's forward pass (transformers' Qwen3 / Gemma / Gemma2 / Gemma3 / Phi3 maths)."""
    n, gemma = len(ids), case.startswith("gemma")
    hd = cfg.get("head_dim", N_EMBD // N_HEAD)
    eps = cfg["rms_norm_eps"]

    def rms(x, g):
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
        return y * (1 + g) if gemma else y * g

    def rope(x, theta):  # [heads, n, hd], rotate_half layout
        inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
        ang = np.outer(np.arange(n), inv)
        cos, sin = np.cos(np.concatenate([ang, ang], 1)), np.sin(np.concatenate([ang, ang], 1))
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    gelu_tanh = lambda g: 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))  # noqa: E731
    silu = lambda g: g / (1 + np.exp(-g))  # noqa: E731
    x = w["model.embed_tokens.weight"][ids]
    if gemma:
        x = x * np.sqrt(N_EMBD)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for il in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{il}."
        h = rms(x, w[p + "input_layernorm.weight"])
        if case == "phi3":
            qkv = h @ w[p + "self_attn.qkv_proj.weight"].T
            q, k, v = np.split(qkv, [N_HEAD * hd, (N_HEAD + N_HEAD_KV) * hd], axis=1)
        else:
            q, k, v = (h @ w[p + f"self_attn.{m}_proj.weight"].T for m in "qkv")
        q = q.reshape(n, N_HEAD, hd).transpose(1, 0, 2)
        k = k.reshape(n, N_HEAD_KV, hd).transpose(1, 0, 2)
        v = v.reshape(n, N_HEAD_KV, hd).transpose(1, 0, 2)
        if case in ("qwen3", "gemma3"):
            q, k = rms(q, w[p + "self_attn.q_norm.weight"]), rms(k, w[p + "self_attn.k_norm.weight"])
        theta = cfg["rope_theta"]
        if case == "gemma3" and (il + 1) % cfg["sliding_window_pattern"] != 0:
            theta = cfg["rope_local_base_freq"]
        q, k = rope(q, theta), rope(k, theta)
        k, v = np.repeat(k, N_HEAD // N_HEAD_KV, 0), np.repeat(v, N_HEAD // N_HEAD_KV, 0)
        scale = cfg.get("query_pre_attn_scalar", hd) ** -0.5
        s = q @ k.transpose(0, 2, 1) * scale
        if cfg.get("attn_logit_softcapping"):
            s = np.tanh(s / cfg["attn_logit_softcapping"]) * cfg["attn_logit_softcapping"]
        s = np.exp(s + mask - (s + mask).max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, -1) @ w[p + "self_attn.o_proj.weight"].T
        if case in ("gemma2", "gemma3"):
            x = x + rms(a, w[p + "post_attention_layernorm.weight"])
            h = rms(x, w[p + "pre_feedforward_layernorm.weight"])
        else:
            x = x + a
            h = rms(x, w[p + "post_attention_layernorm.weight"])
        if case == "phi3":
            g, u = np.split(h @ w[p + "mlp.gate_up_proj.weight"].T, 2, axis=1)
        else:
            g, u = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        f = ((gelu_tanh(g) if gemma else silu(g)) * u) @ w[p + "mlp.down_proj.weight"].T
        x = x + (rms(f, w[p + "post_feedforward_layernorm.weight"]) if case in ("gemma2", "gemma3") else f)
    logits = rms(x, w["model.norm.weight"]) @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T
    if cfg.get("final_logit_softcapping"):
        logits = np.tanh(logits / cfg["final_logit_softcapping"]) * cfg["final_logit_softcapping"]
    return logits


@functools.lru_cache(maxsize=None)
def _convert(case, root):
    folder = Path(root) / case / "hf"
    cfg, w = write_folder(folder, case)
    out = folder.parent / f"{case}.gguf"
    r = subprocess.run([BIN, "convert", str(folder), str(out), "--outtype", "f32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return folder, out, cfg, w


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("families"))


@pytest.fixture(params=sorted(CASES))
def converted(request, root):
    case = request.param
    if not (SHARED / "tokenizer" / CASES[case]["vocab"]).exists():
        pytest.skip(f"shared vocab {CASES[case]['vocab']} missing")
    return (case, *_convert(case, root))


def test_converted_family_logits_match_the_hf_forward_pass_and_llama_cpp(converted):
    llama_cpp = pytest.importorskip("llama_cpp")
    if not TOOL or not os.path.exists(TOOL):
        pytest.skip("EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")
    case, folder, out, cfg, w = converted
    ref = reference_logits(case, cfg, w, IDS)
    # f32 KV in llama.cpp: its f16 default costs ~2e-3 (gemma's ~1.5e-3 stays: its GELU FFN)
    got, lcpp = logits_both_engines(TOOL, out, IDS, folder.parent, type_k=0, type_v=0)
    assert_close_to_reference(case, ref, (("edgellm", got), ("llama.cpp", lcpp)))


def test_converted_family_metadata_is_llama_cpps(converted):
    case, folder, out, cfg, w = converted
    arch = CASES[case].get("arch", case)
    assert field(out, "general.architecture") == arch
    assert field(out, f"{arch}.block_count") == cfg["num_hidden_layers"]
    assert field(out, f"{arch}.attention.head_count_kv") == N_HEAD_KV
    if "head_dim" in cfg:
        assert field(out, f"{arch}.attention.key_length") == cfg["head_dim"]
    src = SHARED / "tokenizer" / CASES[case]["vocab"]
    toks = field(out, "tokenizer.ggml.tokens")
    if case == "qwen3":
        assert field(out, "tokenizer.ggml.model") == "gpt2" and field(out, "tokenizer.ggml.pre") == "gpt-2"
        for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"):
            assert field(out, key) == field(src, key), key
        return
    assert field(out, "tokenizer.ggml.model") == "llama" and field(out, "tokenizer.ggml.pre") == "default"
    s_tok, s_sc, s_ty = (field(src, k) for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                                 "tokenizer.ggml.token_type"))
    o_sc, o_ty = field(out, "tokenizer.ggml.scores"), field(out, "tokenizer.ggml.token_type")
    real = [i for i, t in enumerate(s_tok) if not t.startswith("[PAD")]
    assert [toks[i] for i in real] == [s_tok[i] for i in real]
    assert [o_sc[i] for i in real] == [s_sc[i] for i in real]
    assert [o_ty[i] for i in real] == [s_ty[i] for i in real]
    for kind in ("bos", "eos", "unknown"):
        assert field(out, f"tokenizer.ggml.{kind}_token_id") == field(src, f"tokenizer.ggml.{kind}_token_id"), kind
    if case.startswith("gemma"):
        assert field(out, "tokenizer.ggml.add_space_prefix") is False
    if case == "gemma":
        assert field(out, "tokenizer.ggml.eot_token_id") == 107
    if case == "gemma2":
        assert field(out, "gemma2.attn_logit_softcapping") == pytest.approx(5.0)
        assert field(out, "gemma2.final_logit_softcapping") == pytest.approx(3.0)
        assert field(out, "gemma2.attention.sliding_window") == 512
    if case == "gemma3":
        assert field(out, "gemma3.attention.sliding_window") == 512
        assert field(out, "gemma3.rope.freq_base_swa") == pytest.approx(10000.0)
        assert field(out, "gemma3.final_logit_softcapping") is None
    if case == "phi3":
        assert field(out, "tokenizer.ggml.padding_token_id") == field(src, "tokenizer.ggml.padding_token_id")
        assert field(out, "tokenizer.chat_template") == field(src, "tokenizer.chat_template")
        assert field(out, "phi3.rope.scaling.original_context_length") == 512
        assert field(out, "phi3.rope.dimension_count") == N_EMBD // N_HEAD
        assert field(out, "phi3.attention.sliding_window") == 2047


def _tokenize(gguf, texts):
    records = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    r = subprocess.run([TOK_TOOL, str(gguf), "0", "0"], input=records, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return [[int(x) for x in line.split()] for line in r.stdout.decode().split("\n")[0::2][: len(texts)]]


@pytest.mark.parametrize("case", ["qwen3", "phi3", "mistral"])
def test_converted_family_tokenizer_matches_the_reference(case, root):
    """Qwen3 (GPT-2 BPE here): the `tokenizers` package on the same tokenizer.json. Phi-3 and
    Mistral (SentencePiece): the reference ids llama.cpp's vocab tests store for the real Phi-3 /
    Llama tokenizers (ggml-vocab-*.gguf.out, written by transformers' tokenizer)."""
    if not TOK_TOOL or not os.path.exists(TOK_TOOL):
        pytest.skip("EDGELLM_TOOL_tokenize_tool (tests/tools/tokenize_tool.cpp) is not built")
    vocab = SHARED / "tokenizer" / CASES[case]["vocab"]
    inp = Path(str(vocab) + ".inp")
    if not inp.exists():
        pytest.skip(f"shared vocab test {inp.name} missing")
    folder, out, cfg, w = _convert(case, root)
    texts = inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    got = _tokenize(out, texts)
    if case == "qwen3":
        tokenizers = pytest.importorskip("tokenizers")
        tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        want = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    else:
        lines = Path(str(vocab) + ".out").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
        want = [[int(x) for x in line.split()] for line in lines]
    for text, g, e in zip(texts, got, want):
        assert g == e, repr(text)


def test_convert_family_errors_are_clear(root, tmp_path):
    """A Gemma folder without tokenizer.model, and a garbled one, are refused naming the file;
    LongRoPE (Phi-3 128k) is refused by name; nothing is left behind."""
    folder = tmp_path / "g" / "hf"
    write_folder(folder, "gemma")
    (folder / "tokenizer.model").rename(folder / "tokenizer.model.bak")
    out = tmp_path / "g.gguf"
    r = subprocess.run([BIN, "convert", str(folder), str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and "tokenizer.model is missing" in r.stderr, r.stderr
    (folder / "tokenizer.model").write_bytes(b"\x0a\xff\xff\xff\x0f" + b"x" * 8)
    r = subprocess.run([BIN, "convert", str(folder), str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and "not a SentencePiece model" in r.stderr, r.stderr
    assert not out.exists() and not Path(str(out) + ".tmp").exists()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["Phi3ForCausalLM"]
    cfg.update(original_max_position_embeddings=512,
               rope_scaling={"type": "longrope", "long_factor": [1.0] * 4, "short_factor": [1.0] * 4})
    (folder / "config.json").write_text(json.dumps(cfg))
    r = subprocess.run([BIN, "convert", str(folder), str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and "rope_scaling" in r.stderr and "longrope" in r.stderr, r.stderr
    assert not out.exists()


def test_add_bos_follows_the_post_processor_unless_tokenizer_config_says(tmp_path):
    """As gguf-py's SpecialVocab: a TemplateProcessing that starts with the BOS token (Llama 3's
    tokenizer.json) sets add_bos_token; tokenizer_config.json's own flag overrides it."""
    folder = tmp_path / "hf"
    write_folder(folder, "qwen3")
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tcfg = json.loads((folder / "tokenizer_config.json").read_text())
    tcfg.pop("add_bos_token", None)
    bos = tcfg["bos_token"]
    tok["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                                  {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [], "special_tokens": {}}]}
    (folder / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    for flag, want in ((None, True), (False, False)):
        if flag is not None:
            tcfg["add_bos_token"] = flag
        (folder / "tokenizer_config.json").write_text(json.dumps(tcfg))
        out = tmp_path / f"bos-{flag}.gguf"
        r = subprocess.run([BIN, "convert", str(folder), str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert field(out, "tokenizer.ggml.add_bos_token") is want, flag
        assert field(out, "tokenizer.ggml.add_eos_token") is None  # the template ends with $A


def _tensor_shapes(path):
    """{name: dims} of a GGUF's tensor infos (after the metadata, parsed with struct)."""
    data = Path(path).read_bytes()
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    off = 24
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_value(t):
        nonlocal off
        if t == 8:
            off += 8 + struct.unpack_from("<Q", data, off)[0]
        elif t == 9:
            et, n = struct.unpack_from("<IQ", data, off)
            off += 12
            if et in sizes:
                off += n * sizes[et]
            else:
                for _ in range(n):
                    skip_value(et)
        else:
            off += sizes[t]

    for _ in range(n_kv):
        skip_value(8)
        (t,) = struct.unpack_from("<I", data, off)
        off += 4
        skip_value(t)
    shapes = {}
    for _ in range(n_tensors):
        n = struct.unpack_from("<Q", data, off)[0]
        name = data[off + 8:off + 8 + n].decode()
        off += 8 + n
        (nd,) = struct.unpack_from("<I", data, off)
        shapes[name] = list(struct.unpack_from(f"<{nd}Q", data, off + 4))
        off += 4 + 8 * nd + 4 + 8
    return shapes


def test_gemma3_drops_embedding_rows_past_the_vocabulary(tmp_path):
    """Gemma 3 checkpoints carry more embedding rows than the vocabulary (the multimodal 4B: 262208
    for 262144 tokens); llama.cpp's converter drops the extra rows, so does ours. Gemma 2 has no
    such rule: a mismatch there is refused naming both sizes."""
    for case in ("gemma3", "gemma2"):
        folder = tmp_path / case / "hf"
        cfg, w = write_folder(folder, case)
        n_vocab = cfg["vocab_size"]
        w["model.embed_tokens.weight"] = np.concatenate([w["model.embed_tokens.weight"], np.ones((8, N_EMBD))])
        write_safetensors(folder / "model.safetensors", w)
        out = tmp_path / f"{case}.gguf"
        r = subprocess.run([BIN, "convert", str(folder), str(out), "--outtype", "f32"], capture_output=True, text=True)
        if case == "gemma3":
            assert r.returncode == 0, r.stderr
            assert _tensor_shapes(out)["token_embd.weight"] == [N_EMBD, n_vocab]
            assert len(field(out, "tokenizer.ggml.tokens")) == n_vocab
        else:
            assert r.returncode != 0 and f"{n_vocab} tokens" in r.stderr and f"{n_vocab + 8} rows" in r.stderr, r.stderr
            assert not out.exists()
