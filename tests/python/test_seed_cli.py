"""The seed system's four commands, exactly as its README writes them (with `edgellm` in place of
`python unified_llm_demo.py` and a real GGUF for M.gguf):

    edgellm --list
    edgellm --backend llama_cpp --model-path M.gguf --prompt "Explain edge AI"
    edgellm --backend ollama --model-name llama2:7b-chat --prompt "Explain edge AI"
    edgellm --benchmark --backends llama_cpp ollama --model-names M.gguf llama2:7b-chat

llama-server and Ollama are made unreachable on purpose (an empty PATH and llama.cpp build folder,
OLLAMA_HOST on a port nothing listens on; install-deps --test builds a llama-server, which
test_llama_server_real.py uses): each command must then say why the backend is missing and how
to get it, and the benchmark must go on with what works. The same
spelling with the native engine must produce text and numbers."""
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
MODEL = str(SHARED / "models" / "stories260K.gguf")

pytestmark = [
    pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not Path(MODEL).exists(), reason=f"reference model missing: {MODEL}"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    empty = tmp_path_factory.mktemp("empty-path")  # no llama-server on PATH
    # No llama-server on PATH, none where scripts/build-llama-cpp.sh puts it.
    e = dict(os.environ, PATH=str(empty), EDGELLM_LLAMA_CPP_DIR=str(empty), OLLAMA_HOST=f"http://127.0.0.1:{port}")
    e.pop("EDGELLM_LLAMA_SERVER", None)
    e.pop("LLAMA_SERVER", None)
    return e


def edgellm(env, *args, timeout=300):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_list(env):
    r = edgellm(env, "--list")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line and not line.startswith(" ")}
    assert "available" in rows["native"].split()[1]
    assert rows["llama_cpp"].split()[1] == "unavailable" and "llama-server not found" in rows["llama_cpp"]
    assert rows["ollama"].split()[1] == "unavailable"
    assert r.stdout.count("how to get it:") >= 2


def test_backend_llama_cpp_model_path_prompt(env):
    r = edgellm(env, "--backend", "llama_cpp", "--model-path", MODEL, "--prompt", "Explain edge AI")
    assert r.returncode == 1
    assert "llama-server not found" in r.stderr and "--backend native" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_same_spelling_with_the_native_engine_generates(env):
    r = edgellm(env, "--backend", "native", "--model-path", MODEL, "--prompt", "Explain edge AI", "-n", "16",
                "--temp", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "no text generated"
    assert re.search(r"generated: \d+ tokens", r.stderr), r.stderr


def test_backend_ollama_model_name_prompt(env):
    r = edgellm(env, "--backend", "ollama", "--model-name", "llama2:7b-chat", "--prompt", "Explain edge AI")
    assert r.returncode == 1
    assert "ollama" in r.stderr and "not available" in r.stderr, r.stderr
    assert "ollama serve" in r.stderr and "OLLAMA_HOST" in r.stderr, r.stderr


def table_rows(stdout):
    """(backend, model, runs column) of each row of the console table."""
    lines = stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("backend ")) + 2
    rows = []
    for line in lines[start:]:
        cells = line.split()
        if not cells or line.startswith(" ") or cells[0].endswith(":"):  # notes follow the table
            break
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_benchmark_pairs_each_backend_with_its_model(env, tmp_path):
    r = edgellm(env, "--benchmark", "--backends", "llama_cpp", "ollama", "--model-names", MODEL, "llama2:7b-chat")
    # Nothing could run, which is an error, but each backend's row says why.
    assert r.returncode == 1
    rows = table_rows(r.stdout)
    assert [(b, m) for b, m, _ in rows] == [("llama_cpp", "stories260K.gguf"), ("ollama", "llama2:7b-chat")]
    assert "llama_cpp is not available: llama-server not found" in r.stdout + r.stderr
    assert "ollama is not available" in r.stdout + r.stderr


def test_benchmark_goes_on_with_the_backends_that_work(env, tmp_path):
    r = edgellm(env, "--benchmark", "--backends", "native", "ollama", "--model-names", MODEL, "llama2:7b-chat",
                "--runs", "1", "-n", "8", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    assert [(b, m) for b, m, _ in rows] == [("native", "stories260K.gguf"), ("ollama", "llama2:7b-chat")]
    native_runs, ollama_runs = rows[0][2], rows[1][2]
    assert int(native_runs) >= 1
    assert ollama_runs == "0"
    assert "warning: ollama" in r.stderr and "ollama serve" in r.stderr, r.stderr
