"""The llama_cpp backend against a REAL llama-server (the one scripts/build-llama-cpp.sh builds from
the llama.cpp vendored in the pinned llama-cpp-python sdist), not a fake: greedy text through
`edgellm run --backend llama_cpp` equals the native engine's, and `edgellm bench` reports sane
figures for it (own-clock TTFT/prefill/decode, decode within 0.3-3x of native, the server's own
timings only as an extra, no invalid cells).

llama-server is found through $EDGELLM_LLAMA_SERVER, the build cache
(${EDGELLM_LLAMA_CPP_DIR:-~/.cache/edgellm/llama.cpp-0.3.36}/bin) or PATH; the test skips with a
message when there is none (`scripts/install-deps.sh --test` builds it)."""
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

import real_models
from net_util import free_port

BIN = os.environ.get("EDGELLM_BIN")
SHARED = os.environ.get("EDGELLM_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
STORIES = os.path.join(SHARED, "models/stories260K.gguf")
SMOLLM2 = str(real_models.path("smollm2"))
PROMPT = "Once upon a time"


def find_llama_server():
    env = os.environ.get("EDGELLM_LLAMA_SERVER")
    if env:
        return env if os.access(env, os.X_OK) else None
    root = os.environ.get("EDGELLM_LLAMA_CPP_DIR", os.path.expanduser("~/.cache/edgellm/llama.cpp-0.3.36"))
    cached = os.path.join(root, "bin", "llama-server")
    if os.access(cached, os.X_OK):
        return cached
    return shutil.which("llama-server")


LLAMA_SERVER = find_llama_server()


@pytest.fixture(autouse=True)
def need_bin_and_server():
    if not BIN or not os.path.exists(BIN):
        pytest.skip("EDGELLM_BIN (the edgellm CLI) is not built")
    if not LLAMA_SERVER:
        pytest.skip("llama-server not found (set EDGELLM_LLAMA_SERVER, or run scripts/build-llama-cpp.sh, "
                    "which scripts/install-deps.sh --test does)")


def model_or_skip(path):
    if not os.path.exists(path):
        hint = "scripts/fetch-models.sh smollm2" if "SmolLM2" in path else "the shared reference models"
        pytest.skip(f"model missing: {path} ({hint})")
    return path


def env_with_server():
    env = dict(os.environ)
    env["EDGELLM_LLAMA_SERVER"] = LLAMA_SERVER
    return env


def run_json(model, backend, n_predict, prompt=PROMPT):
    cmd = [BIN, "run", "-m", model, "-p", prompt, "-n", str(n_predict), "--temp", "0", "--seed", "42", "--json"]
    if backend != "native":
        cmd += ["--backend", backend, "--llama-server", LLAMA_SERVER]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env_with_server())
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}"
    return json.loads(p.stdout)


class LlamaServer:
    """llama-server on a free loopback port, for direct requests (llama.cpp's own evaluations)."""

    def __init__(self, model):
        self.port = free_port()
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"llama-server-real-{self.port}.log"), "w")
        self.proc = subprocess.Popen([LLAMA_SERVER, "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
                                      "-c", "512", "-t", "1"], stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"llama-server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.close()
        raise AssertionError("llama-server did not become healthy in 120 s")

    def complete(self, prompt, n_predict, n_probs=0):
        body = {"prompt": prompt, "n_predict": n_predict, "temperature": 0, "cache_prompt": False, "seed": 42,
                "n_probs": n_probs}
        req = urllib.request.Request(self.url + "/completion", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def common_prefix_len(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_greedy_text_equals_native_on_stories260k():
    model = model_or_skip(STORIES)
    native = run_json(model, "native", 48)
    llama = run_json(model, "llama_cpp", 48)
    assert native["text"], "native generated nothing"
    assert llama["text"] == native["text"], f"llama_cpp: {llama['text']!r}\nnative:    {native['text']!r}"
    assert llama["n_gen"] == native["n_gen"]
    # edgellm's own clock for the server backend, the server's own figures beside it.
    assert llama["ttft_ms"] > 0 and llama["ttft_ms"] < llama["total_ms"]
    assert llama["decode_tokens_per_s"] and llama["decode_tokens_per_s"] > 0
    assert llama.get("server_decode_tokens_per_s", 0) > 0


# Quantized weights: llama.cpp rounds each product's activations to 8-bit blocks, edgellm does not
# always at the same points, so logits differ by rounding noise of up to ~15% of their spread
# (QUANT_BOUND in test_engine_llamacpp.py), a few tenths of a nat on these models. Where llama.cpp's
# own top two tokens are closer than this, either engine's greedy choice is a coin toss.
NEAR_TIE_NATS = 0.3


def top2(probs_entry):
    """(token, logprob) of the best two candidates of one completion_probabilities entry."""
    top = sorted(probs_entry["top_logprobs"], key=lambda t: -t["logprob"])[:2]
    return [(t["token"], t["logprob"]) for t in top]


def test_greedy_text_equals_native_on_smollm2_where_llama_cpp_agrees_with_itself():
    model = model_or_skip(SMOLLM2)
    native = run_json(model, "native", 32)
    llama = run_json(model, "llama_cpp", 32)
    if llama["text"] == native["text"]:
        return
    # They differ at character k. A bug unless llama.cpp itself cannot tell there: its batched
    # evaluation (the prefix as one prompt) and its sequential decode (the streamed text) must
    # agree on the token, with a margin above rounding noise.
    k = common_prefix_len(llama["text"], native["text"])
    k = llama["text"].rfind(" ", 0, k + 1)  # a word boundary, so the prefix re-tokenizes the same
    assert k > 0, f"outputs differ within the first word:\nllama_cpp: {llama['text']!r}\nnative: {native['text']!r}"
    server = LlamaServer(model)
    try:
        batched = server.complete(PROMPT + llama["text"][:k], 1, n_probs=5)["completion_probabilities"][0]
        seq = server.complete(PROMPT, 32, n_probs=5)["completion_probabilities"]
    finally:
        server.close()
    pos, at = 0, None
    for entry in seq:  # the sequentially decoded token that starts at character k
        if pos == k:
            at = entry
            break
        pos += len(entry["token"])
    assert at is not None, f"no streamed token starts at character {k}"
    (b_tok, b_lp), (_, b_lp2) = top2(batched)
    (s_tok, s_lp), (_, s_lp2) = top2(at)
    margin = min(s_lp - s_lp2, b_lp - b_lp2)
    if b_tok != s_tok or margin < NEAR_TIE_NATS:
        pytest.skip(f"near-tie after {k} characters: llama.cpp's sequential top {s_tok!r} ({s_lp:.3f} vs "
                    f"{s_lp2:.3f}), batched top {b_tok!r} ({b_lp:.3f} vs {b_lp2:.3f}); margin {margin:.3f} nats "
                    f"< {NEAR_TIE_NATS}: the engines' rounding decides")
    pytest.fail(f"native differs from llama_cpp after {k} characters although llama.cpp is sure there "
                f"({s_tok!r} by {margin:.3f} nats):\nllama_cpp: {llama['text']!r}\nnative:    {native['text']!r}")


def bench_json(model, runs=2, n=32):
    # One thread each: llama.cpp's threads spin at every barrier, so on a machine shared with other
    # work two threads can stall for seconds (the sanity checks then rightly reject the runs).
    cmd = [BIN, "bench", "--backends", "native", "llama_cpp", "-m", model, "--runs", str(runs), "-n", str(n),
           "-t", "1", "-q", "--json", "-"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env_with_server())
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}"
    return json.loads(p.stdout)


@pytest.mark.parametrize("path", [SMOLLM2, STORIES], ids=["smollm2", "stories260k"])
def test_bench_reports_sane_llama_cpp_figures(path):
    model = model_or_skip(path)
    report = bench_json(model)
    groups = {g["backend"]: g for g in report["summary"]["groups"]}
    assert set(groups) == {"native", "llama_cpp"}
    for name, g in groups.items():
        assert g["n_failed"] == 0, [s["error"] for s in report["samples"] if s["error"]]
        assert g["invalid"] == {}, f"{name}: {g['invalid']}"
    for s in report["samples"]:
        assert s["ttft_ms"] > 0, s
        assert s["ttft_ms"] <= s["latency_ms"], s
        if s["prefill_tokens_per_s"] is not None:
            assert s["prefill_tokens_per_s"] > 0
            if s["n_prompt_tokens"] > 0:  # prefill is prompt tokens over TTFT, by edgellm's clock
                if s["backend"] == "llama_cpp":
                    assert s["prefill_tokens_per_s"] == pytest.approx(s["n_prompt_tokens"] * 1000 / s["ttft_ms"], rel=1e-6)
        if s["n_gen_tokens"] < 2:
            assert s["decode_tokens_per_s"] is None, s
            assert any(n.startswith("decode:") for n in s["notes"]), s["notes"]
    native = groups["native"]["decode_tokens_per_s"]["mean"]
    llama = groups["llama_cpp"]["decode_tokens_per_s"]["mean"]
    assert native and llama
    ratio = llama / native
    # A 260K-parameter model decodes a token in well under a millisecond: edgellm's clock on a
    # streamed HTTP response then times the HTTP path rather than llama.cpp, so the speed
    # comparison is made on SmolLM2 only. The bound is an order-of-magnitude sanity check (the bench
    # once reported 333,397 tok/s for llama_cpp), not a speed target: since the tied output matrix
    # is packed, native decodes SmolLM2 2.5-3.5x faster than llama-server here, so 0.3 is too tight.
    if path == SMOLLM2:
        assert 0.1 <= ratio <= 10, f"llama_cpp decode {llama:.1f} tok/s vs native {native:.1f} tok/s"
    # The server's own decode figure is an extra, and present.
    assert groups["llama_cpp"]["server_decode_tokens_per_s"]["n"] > 0
    # Whatever is ranked best is a valid cell.
    for e in report["summary"]["extremes"]:
        for g in report["summary"]["groups"]:
            label = g["backend"] + " / " + os.path.basename(g["model"])
            if e["best"] == label:
                assert e["metric"] not in g["invalid"]
