"""`edgellm synth` outputs load in llama.cpp (via PyPI llama-cpp-python) and evaluate to finite,
non-degenerate logits, for every weight type and mix synth offers on the tiny shape, and with a
vocab taken from a real SentencePiece vocab file.
"""
import os
import subprocess
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="numpy is needed to check logits")
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (PyPI) is the llama.cpp oracle")

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
pytestmark = pytest.mark.skipif(not BIN, reason="EDGELLM_BIN not set (run through ctest)")

TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
         "q2_k", "q3_k", "q3_k_m", "q4_k", "q4_k_m", "q5_k", "q5_k_m", "q6_k"]


def synth(tmp_path, *args):
    out = tmp_path / "model.gguf"
    subprocess.run([BIN, "synth", "-q", "-o", str(out), *args], check=True)
    return out


def eval_logits(path, tokens):
    model = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, logits_all=True, verbose=False)
    model.eval(tokens)
    logits = np.array(model.scores[: len(tokens)], dtype=np.float32)
    return model, logits


def check_logits(logits, n_vocab):
    assert logits.shape[1] == n_vocab
    assert np.isfinite(logits).all(), "llama.cpp produced non-finite logits"
    # Random weights are built to keep activations O(1): logits neither vanish nor explode, and
    # different positions see different distributions.
    std = float(logits.std())
    assert 0.05 < std < 50, f"logit std {std} out of the sane range"
    assert not np.allclose(logits[0], logits[-1])


@pytest.mark.parametrize("wtype", TYPES)
def test_llama_cpp_loads_and_evaluates_synth_tiny(tmp_path, wtype):
    path = synth(tmp_path, "--shape", "tiny", "--type", wtype, "--seed", "7")
    model, logits = eval_logits(path, [1, 300, 301, 302, 303, 304])
    check_logits(logits, model.n_vocab())


def test_builtin_vocab_tokenizes_text_in_llama_cpp(tmp_path):
    path = synth(tmp_path, "--type", "q8_0")
    model = llama_cpp.Llama(model_path=str(path), n_ctx=64, vocab_only=True, verbose=False)
    ids = model.tokenize(b"Once upon a time, Lily said hello!\n", add_bos=True)
    assert ids[0] == 1
    assert model.detokenize(ids) == b"Once upon a time, Lily said hello!\n"
    # Common words are single pieces, and a newline falls back to its byte token <0x0A>.
    assert len(model.tokenize(b"Once upon a time", add_bos=False)) == 4
    assert model.tokenize(b"\n", add_bos=False)[-1] == 3 + 0x0A


def test_vocab_from_a_real_spm_vocab(tmp_path):
    vocab = SHARED / "tokenizer" / "ggml-vocab-llama-spm.gguf"
    if not vocab.exists():
        pytest.skip(f"reference vocab missing: {vocab}")
    path = synth(tmp_path, "--type", "q4_0", "--vocab-from", str(vocab))
    model, logits = eval_logits(path, [1, 450, 4996, 17354])
    assert model.n_vocab() == 32000
    check_logits(logits, 32000)
    ref = llama_cpp.Llama(model_path=str(vocab), vocab_only=True, verbose=False)
    text = b"The quick brown fox jumps over the lazy dog."
    assert model.tokenize(text) == ref.tokenize(text)


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    paths = {}
    for tag, seed in [("a", "3"), ("b", "3"), ("c", "4")]:
        (tmp_path / tag).mkdir()
        paths[tag] = synth(tmp_path / tag, "--type", "q4_k_m", "--seed", seed)
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    assert paths["a"].read_bytes() != paths["c"].read_bytes()
    assert paths["a"].stat().st_size == paths["c"].stat().st_size


def test_small_shape_has_tied_embeddings_and_runs(tmp_path):
    gguf = pytest.importorskip("gguf", reason="PyPI gguf reads the tensor list")
    path = synth(tmp_path, "--shape", "small", "--type", "q4_0")
    names = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    assert "token_embd.weight" in names and "output.weight" not in names
    assert len([n for n in names if n.endswith("attn_q.weight")]) == 30
    model, logits = eval_logits(path, [1, 300, 301, 302])
    check_logits(logits, 49152)


# llama.cpp's file types (llama_ftype) for the mixes synth writes.
LLAMA_FTYPES = {"q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10, "q3_k_s": 11,
                "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18}


@pytest.fixture(scope="module")
def f32_model(tmp_path_factory):
    # 16 layers so the per-layer rules (first/last eighth, every third layer, first 1/16) all bite.
    out = tmp_path_factory.mktemp("f32") / "f32.gguf"
    subprocess.run([BIN, "synth", "-q", "-o", str(out), "--type", "f32", "--n-layer", "16", "--seed", "11"], check=True)
    return out


@pytest.mark.parametrize("mix", list(LLAMA_FTYPES))
def test_synth_equals_llama_quantize_of_the_f32_model(tmp_path, f32_model, mix):
    """The strongest check of both the k-quant quantizers and the type-mix rules: llama.cpp's own
    llama_model_quantize (no imatrix) applied to the F32 synth model gives, tensor for tensor, the
    same types and the same bytes as synth writing that mix directly (weights depend only on seed,
    tensor name and row, not on the type)."""
    import ctypes
    gguf = pytest.importorskip("gguf", reason="PyPI gguf reads the tensors")
    if not hasattr(llama_cpp, "llama_model_quantize"):
        pytest.skip("this llama-cpp-python does not expose llama_model_quantize")
    ref = tmp_path / f"ref_{mix}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[mix]
    params.nthread = 1
    assert llama_cpp.llama_model_quantize(str(f32_model).encode(), str(ref).encode(), ctypes.byref(params)) == 0
    ours = synth(tmp_path, "--type", mix, "--n-layer", "16", "--seed", "11")
    theirs = {t.name: t for t in gguf.GGUFReader(str(ref)).tensors}
    mine = {t.name: t for t in gguf.GGUFReader(str(ours)).tensors}
    assert set(theirs) == set(mine)
    problems = []
    for name, t in theirs.items():
        m = mine[name]
        if t.tensor_type != m.tensor_type:
            problems.append(f"{name}: llama.cpp {t.tensor_type.name}, synth {m.tensor_type.name}")
        elif np.asarray(t.data).tobytes() != np.asarray(m.data).tobytes():
            problems.append(f"{name} ({t.tensor_type.name}): bytes differ")
    assert not problems, problems[:8]


@pytest.mark.parametrize("shape", ["gemma2-tiny", "gemma3-tiny"])
def test_gemma_shapes_match_llama_cpp_past_the_window(tmp_path, shape):
    # The Gemma shapes (window 64) on a 100-token prompt: edgellm's logits equal llama.cpp's, so the
    # windowed layers mask exactly the keys llama.cpp masks.
    tool = os.environ.get("EDGELLM_TOOL_engine_logits")
    if not tool or not os.path.exists(tool):
        pytest.skip("EDGELLM_TOOL_engine_logits is not built")
    path = synth(tmp_path, "--shape", shape, "--type", "f32", "--seed", "5")
    ids = [1] + [(37 * i + 11) % 500 + 3 for i in range(99)]
    model = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=128, n_threads=2, logits_all=True, verbose=False)
    model.eval(ids)
    ref = np.array(model.scores[: len(ids)], dtype=np.float32)
    del model
    check_logits(ref, ref.shape[1])
    out = tmp_path / "logits.f32"
    r = subprocess.run([tool, str(path), " ".join(map(str, ids)), str(out), "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)
    # ggml's CPU GELU reads a table indexed by the f16-rounded input and returns f16 (~5e-4 relative
    # per activation); over 4-6 layers of 512-wide FFNs that is ~2.5e-3 of the logit spread (measured),
    # while a wrong window or norm is O(1).
    err = np.abs(got - ref).max() / ref.std()
    assert err < 0.01, f"max error {err:.4f} of the logit spread"
    assert (got.argmax(1) == ref.argmax(1)).all()
