"""deepseek2 (DeepSeek-V2 / V2-Lite / V3: Multi-head Latent Attention + Mixture of Experts) models
written here with gguf-py and random weights, and the `edgellm synth --shape deepseek2-tiny` model:
edgellm's logits against llama.cpp's (llama-cpp-python), as one batch and token by token. Covers
both attention layouts llama.cpp loads (split attn_k_b / attn_v_b and the older attn_kv_b), Q with
and without LoRA, YaRN with and without yarn_log_multiplier, softmax and sigmoid routers, the
selection bias, group-limited routing, weight normalisation and scaling, shared experts, dense
leading layers, Q8_0 and Q4_0 weights (on models whose expert choice cannot hinge on rounding), and
the errors for inconsistent or incomplete files."""
import json
import os
import subprocess

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (the llama.cpp oracle) is not installed")
gguf = pytest.importorskip("gguf", reason="gguf-py is needed to write the test models")

from deepseek2_model_util import VOCAB_SOURCE, router_margins, write_deepseek2  # noqa: E402

TOOL = os.environ.get("EDGELLM_TOOL_engine_logits")
BIN = os.environ.get("EDGELLM_BIN")
IDS = [1, 400, 33, 267, 13, 45, 300, 261, 99, 5, 17, 421, 200, 77, 310, 29, 101, 499, 3, 250, 128, 7, 64]
# F32 weights, activations and KV cache on both sides (llama.cpp's default F16 cache alone moves its
# logits by up to 0.0055 of the spread on these models): only summation order differs, measured at
# under 2e-5 of the spread. The bound leaves ample headroom and is 5x tighter than the F16-cache one of
# test_engine_archs_llamacpp.py, so a slightly wrong YaRN or attention scale fails it too; a wrong head
# split, RoPE layout or routing decision is an O(1) error.
TOL = 0.001

CASES = {
    # V2-Lite's layout: no Q LoRA, split attn_k_b / attn_v_b, 1 dense layer then MoE.
    "mla-plain-q": dict(form="mla"),
    # V2's layout: Q LoRA; normalised and scaled expert weights; an odd expert FFN width.
    "mla-q-lora": dict(form="mla", q_lora=24, weights_norm=True, weights_scale=2.0, n_ff_exp=37, seed=1),
    # Older GGUFs: one attn_kv_b; 5 heads, value heads narrower than key heads.
    "kv-b-legacy": dict(form="kv_b", n_head=5, v_head=12, seed=2),
    # No dense layer, two shared experts, no expert_weights_scale / expert_gating_func keys.
    "all-moe-2-shared": dict(form="mla", n_dense=0, n_shared=2, weights_scale=None, gating=None, seed=3),
    # V3's router: sigmoid, selection bias, 4 groups of which 2 compete, normalised and scaled.
    "v3-router": dict(form="mla", q_lora=24, gating="sigmoid", probs_bias=True, weights_norm=True,
                      weights_scale=2.5, n_group=4, n_group_used=2, tied=True, seed=4),
    # YaRN as DeepSeek-V2-Lite declares it (factor 40, mscale_all_dim 0.707), over a prompt longer
    # than the original context so the interpolated and extrapolated dims both matter.
    "yarn-v2-lite": dict(form="mla", yarn=dict(factor=40.0, orig_ctx=16, mscale_all_dim=0.707), seed=5),
    # YaRN without yarn_log_multiplier, and with rope.scaling.attn_factor, on the kv_b layout.
    "yarn-attn-factor": dict(form="kv_b", q_lora=24, yarn=dict(factor=4.0, orig_ctx=8), seed=6,
                             extra_kv={"deepseek2.rope.scaling.attn_factor": (1.2, gguf.GGUFValueType.FLOAT32)}),
}


def need_tool():
    if not TOOL or not os.path.exists(TOOL):
        pytest.skip("EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")
    if not os.path.exists(VOCAB_SOURCE):
        pytest.skip(f"reference model missing: {VOCAB_SOURCE}")


def llama_logits(path, ids, n_batch):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=n_batch, n_ubatch=n_batch, logits_all=True,
                          n_threads=2, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, verbose=False)
    llm.eval(ids)
    ref = np.array(llm.scores[: len(ids)], dtype=np.float32)
    del llm
    return ref


def edgellm_logits(path, ids, n_batch, tmp_path):
    out = tmp_path / "logits.f32"
    r = subprocess.run([TOOL, str(path), " ".join(map(str, ids)), str(out), "2", str(n_batch)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def compare(got, ref, tol=TOL):
    """Max error relative to the logit spread; the top token must agree wherever llama.cpp's top two
    are further apart than twice the error bound (closer ones may swap within the bound)."""
    err = float(np.abs(got - ref).max() / ref.std())
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * tol * ref.std()
    assert clear.sum() >= len(ref) // 2, "too few positions with a clear top token to check"
    mismatched = np.nonzero((got.argmax(1) != ref.argmax(1)) & clear)[0]
    return err, mismatched


@pytest.mark.parametrize("case", sorted(CASES))
def test_deepseek2_logits_match_llama_cpp(case, tmp_path):
    need_tool()
    path = tmp_path / f"{case}.gguf"
    write_deepseek2(path, **CASES[case])
    # One batch (prefill: flash attention over the latent rows) and token by token (decode: the
    # per-token attention kernel, one expert product per token), each against llama.cpp doing the same.
    for n_batch in (64, 1):
        ref = llama_logits(path, IDS, n_batch)
        got = edgellm_logits(path, IDS, n_batch, tmp_path)
        err, mismatched = compare(got, ref)
        print(f"{case} batch {n_batch}: max error {err:.2e} of the logit spread")
        assert err < TOL, f"batch {n_batch}: max error {err:.4f} of the logit spread"
        assert len(mismatched) == 0, f"batch {n_batch}: top token differs at positions {mismatched}"


# Quantized weights: llama.cpp rounds the activations of each quantized product to Q8_0 blocks and so do
# we, but not always at the same points (the absorbed attn_k_b product, the expert batching), so the
# logits differ by rounding noise: the bound test_engine_llamacpp.py's QUANT_BOUND gives quantized
# llama models. The noise also reaches the router logits (~2% of their spread on the synth
# deepseek2-tiny model), which there flips the expert choice where the 2nd and 3rd are close and moves
# the softmax weights where the top two are: up to 0.9 of the spread at single positions. These models
# reserve a residual block for the routers (write_deepseek2(router_block=True)) so the choice depends
# on the token alone, with a margin checked from the weights before comparing.
QUANT_TOL = 0.15
QUANT_CASES = {
    # V2-Lite's layout, every matrix Q8_0 (attn_k_b / attn_v_b and the expert stacks included).
    "q8_0": dict(qtype="q8_0", seed=11),
    # Q4_0 with Q LoRA, normalised and scaled expert weights.
    "q4_0-q-lora": dict(qtype="q4_0", q_lora=32, weights_norm=True, weights_scale=2.0, seed=12),
    # The older attn_kv_b layout in Q8_0 (the absorbed key rows are an f32 copy here, not in llama.cpp).
    "q8_0-kv-b": dict(qtype="q8_0", form="kv_b", seed=13),
}


@pytest.mark.parametrize("case", sorted(QUANT_CASES))
def test_quantized_deepseek2_logits_match_llama_cpp(case, tmp_path):
    need_tool()
    path = tmp_path / f"{case}.gguf"
    # Rows of 32 or more values (quantization blocks); 128 residual dims, the last 32 the routers'.
    write_deepseek2(path, n_embd=128, qk_nope=32, v_head=32, n_ff_exp=64, router_block=True, **QUANT_CASES[case])
    routing = router_margins(path, IDS)
    assert len(routing) == 2
    for il, (chosen, margin) in routing.items():
        # Every token's top-2 wins by more than any Q8_0 rounding of the router input could take off,
        # and the prompt sends tokens to every expert (each quantized expert slice is checked).
        assert margin > 0, f"layer {il}: a token's expert choice hinges on rounding (margin {margin:.3f})"
        assert set(sum(chosen, [])) == set(range(8)), f"layer {il}: experts used {sorted(set(sum(chosen, [])))}"
    for n_batch in (64, 1):
        ref = llama_logits(path, IDS, n_batch)
        got = edgellm_logits(path, IDS, n_batch, tmp_path)
        err = float(np.abs(got - ref).max() / ref.std())
        print(f"{case} batch {n_batch}: max error {err:.3f} of the logit spread")
        assert err < QUANT_TOL, f"batch {n_batch}: max error {err:.4f} of the logit spread"
        # Top token: as test_engine_llamacpp.py's compare, a different pick only where llama.cpp
        # scores it within the noise bound of its own best.
        ours, theirs = got.argmax(1), ref.argmax(1)
        gap = ref[np.arange(len(IDS)), theirs] - ref[np.arange(len(IDS)), ours]
        bad = np.nonzero(gap > 2 * QUANT_TOL * ref.std())[0]
        assert len(bad) == 0, f"batch {n_batch}: top token differs beyond the noise at positions {bad}"


def test_deepseek2_tiny_synth_shape_matches_llama_cpp(tmp_path):
    # The synth shape (V2-Lite-like, YaRN over an original context of 64) on a 100-token prompt.
    need_tool()
    if not BIN or not os.path.exists(BIN):
        pytest.skip("EDGELLM_BIN not set (run through ctest)")
    path = tmp_path / "ds2.gguf"
    subprocess.run([BIN, "synth", "-q", "--shape", "deepseek2-tiny", "--type", "f32", "--seed", "5", "-o", str(path)],
                   check=True)
    ids = [1] + [(37 * i + 11) % 500 + 3 for i in range(99)]
    ref = llama_logits(path, ids, 128)
    got = edgellm_logits(path, ids, 128, tmp_path)
    err, mismatched = compare(got, ref)
    print(f"deepseek2-tiny: max error {err:.2e} of the logit spread")
    assert err < TOL, f"max error {err:.4f} of the logit spread"
    assert len(mismatched) == 0, f"top token differs at positions {mismatched}"


def test_deepseek2_tiny_runs_quantized(tmp_path):
    # `edgellm run` on the q8_0 synth model with a q8_0 KV cache (cached rows of 160: whole blocks).
    if not BIN or not os.path.exists(BIN):
        pytest.skip("EDGELLM_BIN not set (run through ctest)")
    path = tmp_path / "ds2-q8.gguf"
    subprocess.run([BIN, "synth", "-q", "--shape", "deepseek2-tiny", "--type", "q8_0", "-o", str(path)], check=True)
    r = subprocess.run([BIN, "run", "-m", str(path), "-p", "Once upon a time", "-n", "12", "--temp", "0",
                        "--ignore-eos", "--kv-type", "q8_0", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["n_gen"] == 12
    assert j["kv_bytes"] > 0


ERRORS = {
    # A routed expert tensor missing from a MoE layer.
    "missing-expert-tensor": (dict(skip_tensors=("blk.1.ffn_up_exps.weight",)),
                              "model is missing tensor blk.1.ffn_up_exps.weight"),
    # More experts used per token than there are.
    "too-many-used-experts": (dict(n_expert=4, n_expert_used=5), "expert_used_count 5 exceeds expert_count 4"),
    # Multi-token-prediction layers (GLM-4.7-Flash style) are refused by name.
    "nextn": (dict(extra_kv={"deepseek2.nextn_predict_layers": (1, gguf.GGUFValueType.UINT32)}),
              "nextn_predict_layers"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_deepseek2_files_are_refused_with_the_key_or_tensor_named(case, tmp_path):
    need_tool()
    kw, message = ERRORS[case]
    path = tmp_path / f"{case}.gguf"
    write_deepseek2(path, **kw)
    out = tmp_path / "logits.f32"
    r = subprocess.run([TOOL, str(path), "1 2 3", str(out), "2"], capture_output=True, text=True)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr


def test_missing_mla_key_is_named(tmp_path):
    # The kv_lora_rank key removed from an otherwise valid model.
    need_tool()
    path = tmp_path / "full.gguf"
    write_deepseek2(path)
    reader = gguf.GGUFReader(str(path))
    bad = tmp_path / "no-kv-lora.gguf"
    w = gguf.GGUFWriter(str(bad), "deepseek2")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "deepseek2.attention.kv_lora_rank"):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, field.contents(), field.types[0], sub_type=field.types[-1])
        else:
            w.add_key_value(name, field.contents(), field.types[0])
    for t in reader.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_shape=list(reversed([int(x) for x in t.shape])))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "logits.f32"
    r = subprocess.run([TOOL, str(bad), "1 2 3", str(out), "2"], capture_output=True, text=True)
    assert r.returncode != 0
    assert "model metadata is missing 'deepseek2.attention.kv_lora_rank'" in r.stderr, r.stderr
