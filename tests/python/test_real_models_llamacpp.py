"""The real trained test models (SmolLM2-135M-Instruct Q4_1, Gemma-3-270M Q4_K_M; see real_models.py)
against llama.cpp (llama-cpp-python) as the outside oracle:
- batched logits over a 512-token text: >= 99 % top-1 on an F32 copy of each model; on the quantized
  file as close to llama.cpp as llama.cpp's own token-by-token evaluation is (disagreements are
  reported with their logit gap);
- greedy token ids for several prompts equal llama.cpp's, up to the first step where llama.cpp's
  own batched and sequential evaluations disagree (a near-tie that numerics decide);
(perplexity, tokenizer and chat prompt: test_real_models_text.py)."""
import json
import os
import subprocess

import pytest

np = pytest.importorskip("numpy", reason="numpy is a test dependency")
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (the llama.cpp oracle) is not installed")

import real_models  # noqa: E402

BIN = os.environ.get("EDGELLM_BIN")
TOOL = os.environ.get("EDGELLM_TOOL_engine_logits")
MODELS = ["smollm2", "gemma3"]
THREADS = 2

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Here is a list of three fruits:\n1.",
]
N_GREEDY = 24


def need_tools():
    if not BIN or not os.path.exists(BIN):
        pytest.skip("EDGELLM_BIN (the edgellm CLI) is not built (run through ctest)")
    if not TOOL or not os.path.exists(TOOL):
        pytest.skip("EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")
    if not real_models.GPL3.exists():
        pytest.skip(f"{real_models.GPL3} is missing (Debian's base-files)")


def oracle(model, n_ctx, logits_all=True, f32_kv=False):
    kw = {"type_k": 0, "type_v": 0} if f32_kv else {}  # GGML_TYPE_F32, as engine_logits uses
    return llama_cpp.Llama(model_path=str(model), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=logits_all,
                           n_threads=THREADS, n_threads_batch=THREADS, verbose=False, **kw)


def gpl_ids(llm, n):
    ids = llm.tokenize(real_models.GPL3.read_bytes(), add_bos=True, special=False)
    assert len(ids) >= n
    return list(ids[:n])


def edgellm_logits(model, ids, tmp_path):
    out = tmp_path / "logits.f32"
    r = subprocess.run([TOOL, str(model), " ".join(map(str, ids)), str(out), str(THREADS)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    got = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)
    out.unlink()
    return got


def dequantized_copy(model, tmp_path):
    """The same model with every tensor dequantized to F32 (edgellm quantize --allow-requantize):
    no activation quantization on either side, so the two forward passes must agree exactly."""
    out = tmp_path / (model.stem + "-f32.gguf")
    r = subprocess.run([BIN, "quantize", str(model), str(out), "f32", "--allow-requantize", "-q"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def llama_cpp_batched_logits(model, ids, n_ubatch=None):
    llm = oracle(model, len(ids) + 8, f32_kv=True)
    if n_ubatch is not None:  # one token per llama_decode: llama.cpp's own sequential path
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=len(ids) + 8, n_batch=len(ids) + 8, n_ubatch=n_ubatch,
                              logits_all=True, n_threads=THREADS, n_threads_batch=THREADS, verbose=False,
                              type_k=0, type_v=0)
    llm.eval(ids)
    out = np.array(llm.scores[:len(ids)], dtype=np.float32)
    del llm
    return out


def top1_report(got, ref):
    ours, theirs = got.argmax(1), ref.argmax(1)
    differ = np.nonzero(ours != theirs)[0]
    gaps = [(int(p), round(float(ref[p, theirs[p]] - ref[p, ours[p]]), 4)) for p in differ]
    return 100.0 * (len(ours) - len(differ)) / len(ours), gaps


@pytest.mark.parametrize("name", MODELS)
def test_batched_logits_agree_with_llama_cpp(name, tmp_path):
    """512 positions of the GPL text, one batch, F32 KV cache on both sides.

    Quantized weights make both engines quantize their activations to 8 bits per block, and on
    these real models the result is chaotic: llama.cpp's own batched and token-by-token evaluations
    of the same file agree on only ~96-98 % of top-1 tokens (measured here, printed), because one
    activation rounded the other way in one layer shifts every later layer. So (1) the exact check
    runs on an F32 copy of the model (no activation quantization): >= 99 % top-1 and 2e-2 of the
    logit spread; (2) on the quantized file itself our top-1 agreement with llama.cpp's batch must be
    within 1 point of llama.cpp's agreement with itself, our error no larger than 1.5x its own, and
    every disagreement a near-tie by llama.cpp's own noise."""
    need_tools()
    model = real_models.require(name)
    n = 512
    tok = oracle(model, 64, logits_all=False)
    ids = gpl_ids(tok, n)
    del tok

    f32 = dequantized_copy(model, tmp_path)
    ref = llama_cpp_batched_logits(f32, ids)
    got = edgellm_logits(f32, ids, tmp_path)
    f32.unlink()
    assert got.shape == ref.shape and np.isfinite(got).all()
    agree, gaps = top1_report(got, ref)
    err = float(np.abs(got - ref).max()) / float(ref.std())
    print(f"{name} dequantized to F32: top-1 agreement {agree:.2f} %, max |diff| {err:.2e} of the logit spread, "
          f"disagreements (position, gap) {gaps}")
    # Summation order alone: SmolLM2 5e-5; Gemma 3 ~1e-3 with one position at 8.5e-3 (its residual
    # stream holds outliers in the thousands, so rounding in different orders shows more).
    assert agree >= 99.0 and err <= 2e-2

    batched = llama_cpp_batched_logits(model, ids)
    sequential = llama_cpp_batched_logits(model, ids, n_ubatch=1)
    got = edgellm_logits(model, ids, tmp_path)
    assert got.shape == batched.shape and np.isfinite(got).all()
    self_agree, self_gaps = top1_report(sequential, batched)
    agree, gaps = top1_report(got, batched)
    self_rms = float(np.sqrt(((sequential - batched) ** 2).mean()))
    our_rms = float(np.sqrt(((got - batched) ** 2).mean()))
    # llama.cpp's noise on the logits that matter: its two evaluations' difference on its top token.
    top = batched.argmax(1)
    noise = np.abs(sequential[np.arange(n), top] - batched[np.arange(n), top])
    tie = max(2 * float(np.percentile(noise, 99)), 1e-3)
    print(f"{name}: top-1 agreement with llama.cpp's batch {agree:.2f} % (llama.cpp token-by-token: {self_agree:.2f} %); "
          f"rms logit error {our_rms:.4f} (llama.cpp's own {self_rms:.4f}); near-tie bound {tie:.3f}; "
          f"our disagreements (position, llama.cpp's gap) {gaps}; llama.cpp's own {self_gaps}")
    assert agree >= self_agree - 1.0
    assert our_rms <= 1.5 * self_rms
    for pos, gap in gaps:
        assert gap <= tie, f"position {pos}: llama.cpp prefers its token by {gap:.4f}, beyond its own noise {tie:.3f}"


def llama_cpp_greedy(model, prompt_ids, n):
    """Greedy ids the usual way (batched prompt, then one token per step), the top-2 margin of
    each step, and llama.cpp's own noise at each step: how much its batched evaluation of the
    whole sequence moves the two best logits."""
    llm = oracle(model, len(prompt_ids) + n + 8, logits_all=True)
    llm.eval(prompt_ids)
    out, rows = [], []
    for _ in range(n):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        rows.append(row)
        out.append(int(np.argmax(row)))
        llm.eval([out[-1]])
    llm.reset()
    llm.eval(prompt_ids + out)
    batched = np.array(llm.scores[:len(prompt_ids) + n], dtype=np.float32)
    del llm
    margins, noise = [], []
    for i, row in enumerate(rows):
        best = np.argsort(-row)[:2]
        margins.append(float(row[best[0]] - row[best[1]]))
        noise.append(float(np.abs(row[best] - batched[len(prompt_ids) + i - 1][best]).max()))
    return out, margins, noise


@pytest.mark.parametrize("name", MODELS)
def test_greedy_ids_equal_llama_cpp_up_to_a_near_tie(name):
    """Greedy generation from several prompts gives llama.cpp's ids token for token; the only
    allowed divergence is at a step where llama.cpp's two best tokens are closer than twice the
    median of its own batched-vs-sequential noise (a near-tie that the 8-bit activation rounding
    decides), after which the texts may legitimately differ."""
    need_tools()
    model = real_models.require(name)
    tok = oracle(model, 256, logits_all=False)
    runs = []
    for prompt in PROMPTS:
        prompt_ids = list(tok.tokenize(prompt.encode(), add_bos=True, special=False))
        theirs, margins, noise = llama_cpp_greedy(model, prompt_ids, N_GREEDY)
        r = subprocess.run([BIN, "run", "-m", str(model), "--prompt-ids", " ".join(map(str, prompt_ids)),
                            "-n", str(N_GREEDY), "--temp", "0", "--ignore-eos", "-t", str(THREADS), "--json"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        runs.append((prompt, json.loads(r.stdout)["tokens"], theirs, margins, noise))
    all_noise = [x for run in runs for x in run[4] if x > 0]
    tie = max(2 * float(np.median(all_noise)) if all_noise else 0.0, 0.05)
    compared = 0
    for prompt, ours, theirs, margins, _ in runs:
        first = next((i for i in range(N_GREEDY) if ours[i] != theirs[i]), N_GREEDY)
        compared += first
        where = f"diverges at step {first} (llama.cpp margin {margins[first]:.3f})" if first < N_GREEDY else "identical"
        print(f"{name} {prompt!r}: {where}; near-tie bound {tie:.3f}")
        if first < N_GREEDY:
            assert margins[first] < tie, (
                f"{prompt!r}: step {first} ours {ours[first]} llama.cpp {theirs[first]} with margin "
                f"{margins[first]:.3f}, not a near-tie (bound {tie:.3f}); ours {ours} theirs {theirs}")
    # Near-ties must be the exception, or this test checks nothing.
    assert compared >= len(PROMPTS) * N_GREEDY // 2, f"only {compared} tokens were comparable"
