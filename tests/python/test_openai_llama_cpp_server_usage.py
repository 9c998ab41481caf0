"""The `openai` backend's token counts against llama-cpp-python's server (`python -m
llama_cpp.server`): what the server really sends while streaming (does it honour
stream_options.include_usage?), and that `edgellm bench` then reports an honest count: the
server's usage when it sends one, else the streamed-chunk count marked as an estimate, never
above the server's own non-streamed completion_tokens. Also that the bench follows the server's
process through its listening port (RSS/CPU of the server, not of edgellm)."""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from net_util import free_port

BIN = os.environ.get("EDGELLM_BIN")
SHARED = os.environ.get("EDGELLM_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
STORIES = os.path.join(SHARED, "models/stories260K.gguf")
PROMPT = "Once upon a time"
N_PREDICT = 23


@pytest.fixture(autouse=True)
def need_bin():
    if not BIN or not os.path.exists(BIN):
        pytest.skip("EDGELLM_BIN (the edgellm CLI) is not built")
    if not os.path.exists(STORIES):
        pytest.skip(f"reference model missing: {STORIES}")


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    if not os.path.exists(STORIES):  # module fixtures run before the autouse check above
        pytest.skip(f"reference model missing: {STORIES}")
    port = free_port()
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"llama-cpp-server-usage-{port}.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", STORIES, "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "512", "--model_alias", "stories260K"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not come up in 120 s")
    yield url, proc.pid
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=120)


def completion_body(stream):
    body = {"model": "stories260K", "prompt": PROMPT, "max_tokens": N_PREDICT, "temperature": 0, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def streamed_chunks(url):
    """Every data: object of a streamed completion, as the server sends them."""
    chunks = []
    with post(url + "/completions", completion_body(True)) as r:
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                chunks.append(json.loads(line[5:]))
    return chunks


def test_bench_count_is_the_servers_usage_or_a_marked_estimate(server, tmp_path):
    url, server_pid = server
    chunks = streamed_chunks(url)
    stream_usage = [c["usage"] for c in chunks if c.get("usage")]
    with post(url + "/completions", completion_body(False)) as r:
        truth = json.load(r)["usage"]["completion_tokens"]
    assert truth > 0

    out = tmp_path / "r.json"
    r = subprocess.run([BIN, "bench", "--backends", "openai", "--url", url, "--served-model", "openai=stories260K",
                        "-m", STORIES, "--prompts", str(prompts_file(tmp_path)), "--runs", "2", "--warmup", "0",
                        "-n", str(N_PREDICT), "--json", str(out), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    samples = json.loads(out.read_text())["samples"]
    assert len(samples) == 2 and all(not s["error"] for s in samples), samples
    for s in samples:
        if stream_usage:
            # The server reports usage while streaming: the count is its own, not an estimate.
            assert s["n_gen_tokens_estimated"] is False
            assert s["n_gen_tokens"] == stream_usage[-1]["completion_tokens"]
        else:
            # No usage while streaming (llama-cpp-python 0.3.x): counted chunks, marked as such.
            assert s["n_gen_tokens_estimated"] is True
            assert 0 < s["n_gen_tokens"] <= truth
            n_text_chunks = sum(1 for c in chunks if c["choices"] and c["choices"][0].get("text"))
            assert s["n_gen_tokens"] == n_text_chunks
            assert s["n_prompt_tokens"] == 0 and s["prefill_tokens_per_s"] is None  # unknown, not guessed
        # The server process was found through its listening port and sampled.
        assert s["monitored_process"].startswith(f"pid {server_pid}"), s["monitored_process"]
        assert s["peak_rss_bytes"] > 1 << 20
        # CPU time of the server from /proc ticks (10 ms) at the start and end of the run: a figure,
        # or, for a run too short for the ticks, null with a note saying so (never a made-up 0).
        if s["cpu_pct"] is None:
            assert any(n.startswith("cpu_pct: run too short") for n in s["notes"]), s["notes"]
            assert s["latency_ms"] < 200, s["latency_ms"]
        else:
            assert s["cpu_pct"] >= 0


def test_llama_cpp_server_0_3_ignores_include_usage_while_streaming(server):
    """Pins what the comment in openai_backend.cpp says about this server version."""
    import llama_cpp
    url, _ = server
    chunks = streamed_chunks(url)
    assert chunks and all("choices" in c for c in chunks)
    if llama_cpp.__version__.startswith("0.3."):
        assert not any(c.get("usage") for c in chunks), f"llama-cpp-python {llama_cpp.__version__} now sends usage"


def prompts_file(tmp_path):
    p = tmp_path / "prompts.txt"
    p.write_text(f"story\t{PROMPT}\n")
    return p


def test_run_reports_unknowns_as_unknown(server):
    """`edgellm run --backend openai` against this server: what it does not report (prompt size,
    so prefill speed) is null in JSON and left out of the summary, never 0.00; a chunk count is
    marked as an estimate."""
    url, _ = server
    args = [BIN, "run", "--backend", "openai", "--url", url, "--model-name", "stories260K", "-p", PROMPT,
            "-n", str(N_PREDICT), "--temp", "0"]
    j = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=120, check=True).stdout)
    assert j["n_gen"] > 0 and j["decode_tokens_per_s"] > 0
    if j["n_prompt"] is None:
        assert j["prefill_tokens_per_s"] is None
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    assert "0.00 tokens/s" not in r.stderr, r.stderr
    if j["n_prompt"] is None:
        assert "prompt: size not reported by the backend" in r.stderr, r.stderr
    if j["n_gen_estimated"]:
        assert "generated: ~" in r.stderr and "an estimate" in r.stderr, r.stderr
