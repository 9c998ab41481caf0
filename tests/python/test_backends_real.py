"""Backends against real software: llama.cpp's OpenAI-compatible server (`python -m
llama_cpp.server`, PyPI llama-cpp-python[server]) driven through the `openai` backend, and the
`llama_cpp_python` Python worker, both on stories260K; greedy output must equal the native
engine's. Plus `edgellm list` honesty and the seed's command line."""
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


@pytest.fixture(autouse=True)
def need_bin():
    if not BIN or not os.path.exists(BIN):
        pytest.skip("EDGELLM_BIN (the edgellm CLI) is not built")
    if not os.path.exists(STORIES):
        pytest.skip(f"reference model missing: {STORIES}")


def edgellm(*args, timeout=180):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def run_json(*args):
    r = edgellm("run", *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def native_greedy(n):
    return run_json("-m", STORIES, "-p", PROMPT, "-n", str(n), "--temp", "0")["text"]


@pytest.fixture(scope="module")
def llama_cpp_server():
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    if not os.path.exists(STORIES):  # module fixtures run before the autouse check above
        pytest.skip(f"reference model missing: {STORIES}")
    port = free_port()
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"llama-cpp-server-{port}.log"), "w")
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
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_list_reports_every_backend_honestly():
    r = edgellm("list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {b["name"]: b for b in json.loads(r.stdout)}
    for name in ["native", "llama_cpp", "ollama", "openai", "vllm", "tensorrt_llm", "transformers",
                 "llama_cpp_python", "onnxruntime_genai"]:
        assert name in rows, name
    assert rows["native"]["available"] is True
    for b in rows.values():
        if not b["available"]:
            assert b["reason"], f"{b['name']} is unavailable without a reason"
    try:
        import llama_cpp  # noqa: F401
        assert rows["llama_cpp_python"]["available"] is True, rows["llama_cpp_python"]
    except ImportError:
        assert rows["llama_cpp_python"]["available"] is False


def test_seed_list_flag_is_the_list_command():
    a, b = edgellm("--list"), edgellm("list")
    assert a.returncode == 0 and a.stdout.splitlines()[0] == b.stdout.splitlines()[0]


def test_openai_backend_against_llama_cpp_server_matches_native_greedy(llama_cpp_server):
    j = run_json("--backend", "openai", "--url", llama_cpp_server, "--model-name", "stories260K", "-p", PROMPT,
                 "-n", "24", "--temp", "0")
    assert j["backend"] == "openai"
    assert j["n_gen"] > 0 and j["ttft_ms"] > 0 and j["decode_tokens_per_s"] > 0
    assert j["text"], j
    # Same model, same greedy decoding: the served text is the start of the native engine's text.
    native = native_greedy(24)
    common = min(len(native), len(j["text"]))
    assert common > 10 and native[:common] == j["text"][:common], (native, j["text"])


def test_openai_backend_chat_mode(llama_cpp_server):
    r = edgellm("run", "--backend", "openai", "--url", llama_cpp_server, "--model-name", "stories260K",
                "-p", "Tell me a story", "--chat", "-n", "8", "--temp", "0")
    assert r.returncode == 0, r.stderr
    assert "backend: openai" in r.stderr


def test_seed_backend_flags_with_unknown_served_model_are_a_clear_error(llama_cpp_server):
    r = edgellm("--backend", "openai", "--url", llama_cpp_server, "--model-name", "no-such-model",
                "--prompt", "Explain edge AI")
    assert r.returncode != 0
    assert "no-such-model" in r.stderr and "stories260K" in r.stderr


def test_llama_cpp_python_worker_matches_native_greedy():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    j = run_json("--backend", "llama_cpp_python", "-m", STORIES, "-p", PROMPT, "-n", "24", "--temp", "0")
    assert j["backend"] == "llama_cpp_python"
    assert j["n_prompt"] > 0 and j["n_gen"] > 0
    native = native_greedy(24)
    common = min(len(native), len(j["text"]))
    assert common > 10 and native[:common] == j["text"][:common], (native, j["text"])


def test_worker_reports_missing_model_clearly():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    r = edgellm("run", "--backend", "llama_cpp_python", "-m", "/nonexistent/model.gguf", "-p", "x", "-n", "4")
    assert r.returncode != 0
    assert "/nonexistent/model.gguf" in r.stderr


def test_unavailable_backend_says_how_to_get_it():
    r = edgellm("--backend", "llama_cpp", "--model-path", STORIES, "--prompt", "Explain edge AI",
                "--llama-server", "/nonexistent/llama-server")
    if "--llama-server" in r.stderr and "extra" in r.stderr:
        pytest.fail(r.stderr)
    assert r.returncode != 0
    assert "--backend native" in r.stderr, r.stderr
