"""Gate 2: edgellm's next-token logits against llama.cpp (llama-cpp-python) as an outside oracle,
on stories260K and on `edgellm synth` models of every weight type."""
import os
import subprocess

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (the llama.cpp oracle) is not installed")

BIN = os.environ.get("EDGELLM_BIN")
TOOL = os.environ.get("EDGELLM_TOOL_engine_logits")
SHARED = os.environ.get("EDGELLM_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))

# A fixed token sequence: BOS, then ids spread over the vocabulary (all < 500, valid for both
# stories260K's 512 and synth's 502-token vocab).
IDS = [1, 400, 33, 267, 13, 45, 300, 261, 99, 5, 17, 421, 200, 77, 310, 29, 101, 499, 3, 250, 128]

# Bounds on max |edgellm - llama.cpp| / std(llama.cpp logits), per weight type. The two engines
# dequantize weights identically; what differs is how llama.cpp feeds the *activations* to its
# dot products: F32 weights: f32 activations (only summation order differs); F16: activations
# rounded to f16 (2^-11 relative); BF16: rounded to bf16 (2^-8); quantized types: activations
# quantized to 8-bit blocks (Q8_0 / Q8_K, step = block max / 127), which measures at ~1-1.6% rms and
# ~7% of the logit spread at worst on these random models. Each bound is ~2x what was measured.
BOUND = {"f32": 0.005, "f16": 0.01, "bf16": 0.04}
QUANT_BOUND = 0.15

# --pure gives every matrix the base type; q4_k_m is llama.cpp's mixed recipe as `synth` writes it.
SYNTH_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
               "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_k_m"]


def need_tools():
    if not BIN or not os.path.exists(BIN):
        pytest.skip("EDGELLM_BIN (the edgellm CLI) is not built")
    if not TOOL or not os.path.exists(TOOL):
        pytest.skip("EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")


def llama_cpp_logits(path, ids):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, logits_all=True, n_threads=2,
                          verbose=False)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
    del llm
    return logits


def edgellm_logits(path, ids, tmp_path, n_threads=2):
    out = tmp_path / "logits.f32"
    r = subprocess.run([TOOL, str(path), " ".join(map(str, ids)), str(out), str(n_threads)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def compare(path, bound, tmp_path):
    ref = llama_cpp_logits(path, IDS)
    got = edgellm_logits(path, IDS, tmp_path)
    assert got.shape == ref.shape
    assert np.isfinite(got).all()
    scale = float(ref.std())
    err = float(np.abs(got - ref).max()) / scale
    assert err <= bound, f"max error {err:.4f} of the logit spread exceeds {bound}"
    # Same top-1 at every position. Where llama.cpp's two best logits are closer than the
    # numerical noise allowed above, the arg-max is decided by rounding alone; there our pick
    # must still be one of llama.cpp's near-best tokens.
    ours = got.argmax(1)
    theirs = ref.argmax(1)
    for pos in range(len(IDS)):
        if ours[pos] == theirs[pos]:
            continue
        gap = ref[pos, theirs[pos]] - ref[pos, ours[pos]]
        assert gap <= 2 * bound * scale, (
            f"position {pos}: edgellm picks {ours[pos]}, llama.cpp {theirs[pos]} (gap {gap:.4f} "
            f"beyond the noise bound)")
    return err


def test_stories260k_logits_match_llama_cpp(tmp_path):
    need_tools()
    model = os.path.join(SHARED, "models/stories260K.gguf")
    if not os.path.exists(model):
        pytest.skip(f"reference model missing: {model}")
    # A trained model has a clear winner at every position: require the exact same top-1.
    ref = llama_cpp_logits(model, IDS)
    got = edgellm_logits(model, IDS, tmp_path)
    assert (got.argmax(1) == ref.argmax(1)).all()
    compare(model, BOUND["f32"], tmp_path)


@pytest.mark.parametrize("wtype", SYNTH_TYPES)
def test_synth_logits_match_llama_cpp(wtype, tmp_path):
    need_tools()
    model = tmp_path / f"synth-{wtype}.gguf"
    args = [BIN, "synth", "--shape", "tiny", "--type", wtype, "-o", str(model), "-q"]
    if wtype != "q4_k_m":
        args.append("--pure")
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "synth" in r.stderr and "not" in r.stderr.lower():
        pytest.skip(f"edgellm synth unavailable: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    compare(model, BOUND.get(wtype, QUANT_BOUND), tmp_path)


def test_logits_do_not_depend_on_threads_or_batch(tmp_path):
    need_tools()
    model = tmp_path / "synth-q4_0.gguf"
    subprocess.run([BIN, "synth", "--shape", "tiny", "--type", "q4_0", "-o", str(model), "-q"], check=True)
    one = edgellm_logits(model, IDS, tmp_path, n_threads=1)
    three = edgellm_logits(model, IDS, tmp_path, n_threads=3)
    assert np.array_equal(one, three)
