"""qwen2 / qwen3 / phi3 / gemma / gemma2 / gemma3 / llama-with-extras models written here with gguf-py and
random weights: edgellm's logits against llama.cpp's (llama-cpp-python). Covers what `synth` models do
not: Q/K/V biases, NeoX RoPE, per-head Q/K RMSNorm, fused QKV and gate/up (phi3), tied embeddings, GQA
ratios, RoPE base and linear scaling, Gemma's embedding scale, GeGLU, post-norms, soft caps, and
sliding-window attention over prompts longer than the window."""
import os
import subprocess

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (the llama.cpp oracle) is not installed")
gguf = pytest.importorskip("gguf", reason="gguf-py is needed to write the test models")

TOOL = os.environ.get("EDGELLM_TOOL_engine_logits")
SHARED = os.environ.get("EDGELLM_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
VOCAB_SOURCE = os.path.join(SHARED, "models/stories260K.gguf")  # a 512-token SentencePiece vocab
IDS = [1, 400, 33, 267, 13, 45, 300, 261, 99, 5, 17, 421, 200, 77, 310, 29, 101, 499, 3, 250, 128, 7, 64]


def write_model(path, arch, n_embd=64, n_head=4, n_head_kv=2, n_ff=96, n_layer=2, head_dim=None, tied=False,
                rope_base=10000.0, rope_linear=None, seed=0, swa=0, attn_softcap=None, final_softcap=None):
    rng = np.random.default_rng(seed)
    src = gguf.GGUFReader(VOCAB_SOURCE)
    n_vocab = 512
    hd = head_dim or n_embd // n_head
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layer)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_context_length(256)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(rope_base)
    if head_dim:
        w.add_key_length(hd)
        w.add_value_length(hd)
    if swa:
        w.add_sliding_window(swa)
    if attn_softcap:
        w.add_attn_logit_softcapping(attn_softcap)
    if final_softcap:
        w.add_final_logit_softcapping(final_softcap)
    if rope_linear:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rope_linear)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        f = src.fields[key]
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), f.types[0])

    def mat(rows, cols, scale=None):
        return (rng.standard_normal((rows, cols)) * (scale or cols ** -0.5)).astype(np.float32)

    def vec(n, offset=0.0, scale=0.1):
        return (offset + scale * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd, 1.0))
    w.add_tensor("output_norm.weight", vec(n_embd, 1.0))
    if not tied and arch not in ("gemma", "gemma2"):  # llama.cpp always ties these two
        w.add_tensor("output.weight", mat(n_vocab, n_embd))
    for il in range(n_layer):
        p = f"blk.{il}."
        w.add_tensor(p + "attn_norm.weight", vec(n_embd, 1.0))
        if arch == "phi3":  # fused Q/K/V rows
            w.add_tensor(p + "attn_qkv.weight", mat((n_head + 2 * n_head_kv) * hd, n_embd))
        else:
            w.add_tensor(p + "attn_q.weight", mat(n_head * hd, n_embd))
            w.add_tensor(p + "attn_k.weight", mat(n_head_kv * hd, n_embd))
            w.add_tensor(p + "attn_v.weight", mat(n_head_kv * hd, n_embd))
        if arch == "qwen2":
            w.add_tensor(p + "attn_q.bias", vec(n_head * hd, 0.0, 0.5))
            w.add_tensor(p + "attn_k.bias", vec(n_head_kv * hd, 0.0, 0.5))
            w.add_tensor(p + "attn_v.bias", vec(n_head_kv * hd, 0.0, 0.5))
        if arch in ("qwen3", "gemma3"):
            w.add_tensor(p + "attn_q_norm.weight", vec(hd, 1.0, 0.3))
            w.add_tensor(p + "attn_k_norm.weight", vec(hd, 1.0, 0.3))
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_head * hd))
        w.add_tensor(p + "ffn_norm.weight", vec(n_embd, 1.0))
        if arch == "phi3":  # gate rows, then up rows, in one tensor
            w.add_tensor(p + "ffn_up.weight", mat(2 * n_ff, n_embd))
        else:
            w.add_tensor(p + "ffn_gate.weight", mat(n_ff, n_embd))
            w.add_tensor(p + "ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", mat(n_embd, n_ff))
        if arch in ("gemma2", "gemma3"):
            w.add_tensor(p + "post_attention_norm.weight", vec(n_embd, 1.0, 0.3))
            w.add_tensor(p + "post_ffw_norm.weight", vec(n_embd, 1.0, 0.3))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CASES = {
    "llama-gqa4": dict(arch="llama", n_head=8, n_head_kv=2),
    "llama-tied-rope-linear": dict(arch="llama", tied=True, rope_base=50000.0, rope_linear=4.0),
    "qwen2-biases": dict(arch="qwen2", tied=True, rope_base=1000000.0),
    "qwen3-qk-norm": dict(arch="qwen3", head_dim=32, n_head=4, n_head_kv=2),
    # Phi-3 mini's layout: fused attn_qkv and gate+up, NeoX RoPE, a sliding window in the metadata.
    "phi3-fused": dict(arch="phi3", n_head=4, n_head_kv=4, n_ff=80, swa=64),
    # Gemma: sqrt(n_embd) embedding scale, GeGLU, tied output, MQA, head_dim != n_embd / n_head.
    "gemma-mqa": dict(arch="gemma", n_head=4, n_head_kv=1, head_dim=32),
    # Gemma 2 with its default soft caps (50 / 30), and with tight ones that bend most scores and
    # logits; windows of 8 on layers 0 and 2 (23-token prompt: most keys are outside the window).
    "gemma2-softcap": dict(arch="gemma2", n_layer=4, swa=8, attn_softcap=50.0, final_softcap=30.0),
    "gemma2-tight-caps": dict(arch="gemma2", n_layer=3, swa=5, head_dim=32, attn_softcap=2.0, final_softcap=4.0),
    # Gemma 3: Q/K norms, post-norms, layers 0-4 and 6 windowed (RoPE base 10000), layer 5 global with
    # its own base and linear RoPE scaling.
    "gemma3-swa": dict(arch="gemma3", n_layer=7, swa=6, head_dim=32, rope_base=1000000.0, rope_linear=8.0, tied=True),
    "gemma3-untied": dict(arch="gemma3", n_layer=2, swa=64, n_head=8, n_head_kv=2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_architecture_logits_match_llama_cpp(case, tmp_path):
    if not TOOL or not os.path.exists(TOOL):
        pytest.skip("EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")
    if not os.path.exists(VOCAB_SOURCE):
        pytest.skip(f"reference model missing: {VOCAB_SOURCE}")
    path = tmp_path / f"{case}.gguf"
    write_model(path, **CASES[case])

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, logits_all=True, n_threads=2, verbose=False)
    llm.eval(IDS)
    ref = np.array(llm.scores[: len(IDS)], dtype=np.float32)
    del llm

    out = tmp_path / "logits.f32"
    # Batch 64: the prompt in one step (flash attention); batch 1: token by token (the per-token
    # attention kernel, as in decode) for the windowed / soft-capped models.
    for n_batch in ["64", "1"] if CASES[case]["arch"].startswith("gemma") else ["64"]:
        r = subprocess.run([TOOL, str(path), " ".join(map(str, IDS)), str(out), "2", n_batch], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        got = np.fromfile(out, dtype=np.float32).reshape(len(IDS), -1)
        # F32 weights and activations on both sides: only summation order differs (bound as for
        # F32 in test_engine_llamacpp.py). A wrong RoPE layout, bias or norm shows up as O(1) errors.
        err = np.abs(got - ref).max() / ref.std()
        assert err < 0.005, f"batch {n_batch}: max error {err:.4f} of the logit spread"
        assert (got.argmax(1) == ref.argmax(1)).all(), f"batch {n_batch}"


@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_sliding_window_on_every_layer(arch, tmp_path):
    # llama.cpp ignores attention.sliding_window for llama and phi3, so it cannot be the oracle of
    # a windowed llama directly. With one layer, though, attention depends on relative positions
    # only (RoPE), so the windowed model's logits at position p equal the full-attention logits of
    # the last token of the window's own tokens ids[p - W + 1 .. p], which llama.cpp computes.
    if not TOOL or not os.path.exists(TOOL):
        pytest.skip("EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")
    if not os.path.exists(VOCAB_SOURCE):
        pytest.skip(f"reference model missing: {VOCAB_SOURCE}")
    window = 7
    kw = dict(CASES["phi3-fused"]) if arch == "phi3" else dict(arch="llama", n_head=8, n_head_kv=2)
    kw.update(n_layer=1, swa=window)
    path = tmp_path / f"{arch}-swa.gguf"
    write_model(path, **kw)
    out = tmp_path / "logits.f32"
    r = subprocess.run([TOOL, str(path), " ".join(map(str, IDS)), str(out), "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.fromfile(out, dtype=np.float32).reshape(len(IDS), -1)

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, logits_all=True, n_threads=2, verbose=False)
    worst = 0.0
    for p in [0, 3, window - 1, window, window + 1, 15, len(IDS) - 1]:
        ids = IDS[max(0, p - window + 1): p + 1]
        llm.reset()
        llm.eval(ids)
        ref = np.array(llm.scores[len(ids) - 1], dtype=np.float32)
        worst = max(worst, np.abs(got[p] - ref).max() / ref.std())
        assert got[p].argmax() == ref.argmax(), f"position {p}"
    del llm
    assert worst < 0.005, f"max error {worst:.4f} of the logit spread"
    # Past the window the logits must differ from full attention (the window is really applied).
    full = tmp_path / "full.gguf"
    kw.update(swa=0)
    write_model(full, **kw)
    r = subprocess.run([TOOL, str(full), " ".join(map(str, IDS)), str(out), "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got_full = np.fromfile(out, dtype=np.float32).reshape(len(IDS), -1)
    assert np.array_equal(got_full[:window], got[:window])
    assert np.abs(got_full[window:] - got[window:]).max() > 0.1


def test_sliding_window_does_not_cap_the_context(tmp_path):
    # Windowed attention is implemented: a context larger than the window is accepted, and the
    # default context is the trained one (256 here), not the window.
    bin_ = os.environ.get("EDGELLM_BIN")
    if not bin_ or not os.path.exists(bin_):
        pytest.skip("EDGELLM_BIN not set (run through ctest)")
    if not os.path.exists(VOCAB_SOURCE):
        pytest.skip(f"reference model missing: {VOCAB_SOURCE}")
    path = tmp_path / "phi3.gguf"
    write_model(path, **CASES["phi3-fused"])
    # Random weights generate arbitrary bytes: decode leniently.
    r = subprocess.run([bin_, "run", "-m", str(path), "-p", "hi", "-n", "2", "-c", "128"], capture_output=True, text=True,
                       errors="replace")
    assert r.returncode == 0, r.stderr
    r = subprocess.run([bin_, "run", "-m", str(path), "-p", "hi", "-n", "2", "--json"], capture_output=True, text=True,
                       errors="replace")
    assert r.returncode == 0, r.stderr
    import json
    assert json.loads(r.stdout)["n_ctx"] == 256
