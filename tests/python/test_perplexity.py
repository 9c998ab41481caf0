"""`edgellm perplexity` against llama.cpp: the same chunked method computed at test time with
llama-cpp-python's logits (stories260K and a synthetic model), llama-perplexity's published
figure for stories260K on Debian's GPL-3 text (105.3190 +/- 3.53 with -c 128 -b 128), and clear
errors for a missing file or a text that is too short."""
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="numpy is a test dependency")
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is the oracle (pip install llama-cpp-python)")

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"
GPL3 = Path("/usr/share/common-licenses/GPL-3")

pytestmark = pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)")


def edgellm(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)


def ours(model, text_file, n_ctx, n_batch, *extra):
    r = edgellm("perplexity", "-m", str(model), "-f", str(text_file), "-c", str(n_ctx), "-b", str(n_batch), "-t", "2",
                "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def llama_cpp_ppl(model, text, n_ctx, n_chunks=None):
    """llama-perplexity's procedure on llama-cpp-python's logits."""
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
                          n_threads=2)
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    add_bos = llm.tokenize(b"a", add_bos=True, special=False)[0] == llm.token_bos()
    chunks = len(tokens) // n_ctx if n_chunks is None else min(n_chunks, len(tokens) // n_ctx)
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    for c in range(chunks):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            chunk[0] = llm.token_bos()
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[:n_ctx], dtype=np.float64)
        for i in range(first, n_ctx - 1):
            row = logits[i]
            m = row.max()
            lp = row[tokens[c * n_ctx + i + 1]] - m - math.log(np.exp(row - m).sum())
            nll -= lp
            nll2 += lp * lp
            count += 1
    mean = nll / count
    ppl = math.exp(mean)
    var = nll2 / count - mean * mean
    return len(tokens), ppl, math.sqrt(var / (count - 1)) * ppl


@pytest.mark.skipif(not STORIES.exists() or not GPL3.exists(), reason="stories260K or /usr/share/common-licenses/GPL-3 missing")
def test_stories260k_gpl3_matches_llama_perplexity_figure_and_llama_cpp_python():
    got = ours(STORIES, GPL3, 128, 128)
    # llama-perplexity's own output for this file and model: 105.3190 +/- 3.53.
    assert abs(got["ppl"] / 105.3190 - 1) < 1e-3, got["ppl"]
    assert abs(got["ppl_stderr"] - 3.53) < 0.01, got["ppl_stderr"]
    n_tokens, ppl, se = llama_cpp_ppl(STORIES, GPL3.read_text(), 128)
    assert got["n_tokens"] == n_tokens
    assert abs(got["ppl"] / ppl - 1) < 1e-3, (got["ppl"], ppl)
    assert abs(got["ppl_stderr"] / se - 1) < 1e-2, (got["ppl_stderr"], se)
    assert got["n_chunks"] == n_tokens // 128 and got["n_scored"] == got["n_chunks"] * 63


@pytest.mark.skipif(not GPL3.exists(), reason="/usr/share/common-licenses/GPL-3 missing")
def test_synth_model_matches_llama_cpp_python(tmp_path):
    model = tmp_path / "tiny.gguf"
    r = edgellm("synth", "--shape", "tiny", "--type", "q8_0", "-q", "-o", str(model))
    assert r.returncode == 0, r.stderr
    got = ours(model, GPL3, 64, 32, "--chunks", "12")
    n_tokens, ppl, se = llama_cpp_ppl(model, GPL3.read_text(), 64, n_chunks=12)
    assert got["n_tokens"] == n_tokens and got["n_chunks"] == 12
    assert abs(got["ppl"] / ppl - 1) < 2e-3, (got["ppl"], ppl)
    # The running estimate after the last chunk is the final one.
    assert got["chunk_ppl"][-1] == pytest.approx(got["ppl"])


def test_bad_input_is_a_clear_error(tmp_path):
    model = tmp_path / "tiny.gguf"
    assert edgellm("synth", "--shape", "tiny", "--type", "q4_0", "-q", "-o", str(model)).returncode == 0
    r = edgellm("perplexity", "-m", str(model), "-f", str(tmp_path / "missing.txt"))
    assert r.returncode != 0 and "cannot read the text file" in r.stderr
    short = tmp_path / "short.txt"
    short.write_text("just a few words")
    r = edgellm("perplexity", "-m", str(model), "-f", str(short), "-c", "64")
    assert r.returncode != 0 and "needs at least 128" in r.stderr, r.stderr
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    r = edgellm("perplexity", "-m", str(model), "-f", str(text), "-c", "100000")
    assert r.returncode != 0 and "context" in r.stderr, r.stderr


def llama_cpp_logprobs(model, tokens, n_ctx, n_chunks):
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
                          n_threads=2)
    first = n_ctx // 2
    rows = []
    for c in range(n_chunks):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        chunk[0] = llm.token_bos()
        llm.reset()
        llm.eval(chunk)
        lg = np.asarray(llm.scores[first:n_ctx - 1], dtype=np.float64)
        m = lg.max(axis=1, keepdims=True)
        rows.append(lg - m - np.log(np.exp(lg - m).sum(axis=1, keepdims=True)))
    return np.concatenate(rows)


@pytest.mark.skipif(not GPL3.exists(), reason="/usr/share/common-licenses/GPL-3 missing")
def test_kl_divergence_self_is_zero_and_q4_against_q8_matches_llama_cpp_python(tmp_path):
    q8, q4 = tmp_path / "q8.gguf", tmp_path / "q4.gguf"
    for path, t in ((q8, "q8_0"), (q4, "q4_0")):
        assert edgellm("synth", "--shape", "tiny", "--type", t, "-q", "-o", str(path)).returncode == 0
    base = tmp_path / "base.kld"
    r = edgellm("perplexity", "-m", str(q8), "-f", str(GPL3), "-c", "64", "--chunks", "10", "-t", "2",
                "--kl-divergence-base", str(base))
    assert r.returncode == 0, r.stderr
    self_cmp = ours(q8, GPL3, 64, 64, "--kl-divergence", str(base))["kl_divergence"]
    assert self_cmp["n"] == 10 * 31
    # 0 up to the f32 rounding of the stored log-probabilities (~1e-8).
    assert self_cmp["kld_mean"] < 1e-6 and self_cmp["kld_max"] < 1e-5 and self_cmp["top1_agree"] == 1.0
    assert self_cmp["dp_rms"] < 1e-6
    got = ours(q4, GPL3, 64, 64, "--kl-divergence", str(base))["kl_divergence"]
    # The same statistics from llama-cpp-python's logits of both files.
    llm = llama_cpp.Llama(model_path=str(q8), vocab_only=True, verbose=False)
    tokens = llm.tokenize(GPL3.read_text().encode(), add_bos=True, special=False)
    lb = llama_cpp_logprobs(q8, tokens, 64, 10)
    lt = llama_cpp_logprobs(q4, tokens, 64, 10)
    kld = (np.exp(lb) * (lb - lt)).sum(axis=1)
    top1 = (lb.argmax(axis=1) == lt.argmax(axis=1)).mean()
    assert got["kld_mean"] > 1e-4, "q4_0 against q8_0 should differ"
    assert abs(got["kld_mean"] / kld.mean() - 1) < 0.05, (got["kld_mean"], kld.mean())
    assert abs(got["top1_agree"] - top1) < 0.02, (got["top1_agree"], top1)


def test_kl_divergence_bad_base_files_are_clear_errors(tmp_path):
    model = tmp_path / "tiny.gguf"
    assert edgellm("synth", "--shape", "tiny", "--type", "q4_0", "-q", "-o", str(model)).returncode == 0
    junk = tmp_path / "junk.kld"
    junk.write_bytes(b"not a base file at all")
    r = edgellm("perplexity", "-m", str(model), "--kl-divergence", str(junk))
    assert r.returncode != 0 and "not an edgellm KL-divergence base file" in r.stderr, r.stderr
    # A text too short fails before anything is written: no partial base file.
    short = tmp_path / "short.txt"
    short.write_text("few words")
    out = tmp_path / "b.kld"
    r = edgellm("perplexity", "-m", str(model), "-f", str(short), "-c", "64", "--kl-divergence-base", str(out))
    assert r.returncode != 0 and not out.exists() and not Path(str(out) + ".partial").exists()
    if STORIES.exists() and GPL3.exists():
        # A base written by another vocabulary is refused.
        sb = tmp_path / "stories.kld"
        assert edgellm("perplexity", "-m", str(STORIES), "-f", str(GPL3), "-c", "64", "--chunks", "2",
                       "--kl-divergence-base", str(sb)).returncode == 0
        truncated = tmp_path / "trunc.kld"
        truncated.write_bytes(sb.read_bytes()[:-100])
        r = edgellm("perplexity", "-m", str(STORIES), "--kl-divergence", str(truncated))
        assert r.returncode != 0 and "truncated or corrupt" in r.stderr, r.stderr
        r = edgellm("perplexity", "-m", str(model), "--kl-divergence", str(sb))
        assert r.returncode != 0 and "vocabulary" in r.stderr, r.stderr


def test_quantized_kv_cache_costs_little_perplexity_and_memory(tmp_path):
    # --kv-type q8_0 / q4_0 (also spelled -ctk as llama.cpp): the PPL barely moves, the cache
    # shrinks to 34/64 and 18/64 of F16; a model whose heads are not whole blocks is refused.
    model = tmp_path / "tiny-f16.gguf"
    assert edgellm("synth", "--shape", "tiny", "--type", "f16", "-q", "-o", str(model)).returncode == 0
    ppl, kv = {}, {}
    for t in ("f16", "q8_0", "q4_0"):
        ppl[t] = ours(model, GPL3, 128, 128, "--chunks", "8", "-ctk", t)["ppl"]
        r = edgellm("run", "-m", str(model), "-p", "hello", "-n", "4", "--temp", "0", "--kv-type", t, "--json")
        assert r.returncode == 0, r.stderr
        kv[t] = json.loads(r.stdout)["kv_bytes"]
    assert abs(ppl["q8_0"] / ppl["f16"] - 1) < 0.005, ppl
    assert abs(ppl["q4_0"] / ppl["f16"] - 1) < 0.03, ppl
    assert kv["q8_0"] * 64 == kv["f16"] * 34 and kv["q4_0"] * 64 == kv["f16"] * 18, kv
    if STORIES.exists():
        r = edgellm("run", "-m", str(STORIES), "-p", "hi", "-n", "2", "--kv-type", "q8_0")
        assert r.returncode != 0 and "multiple of 32" in r.stderr, r.stderr
    r = edgellm("run", "-m", str(model), "-p", "hi", "-n", "2", "--kv-type", "q5_k")
    assert r.returncode != 0 and "--kv-type must be" in r.stderr
