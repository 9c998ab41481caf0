"""A bounded load test of `edgellm serve`: 16 concurrent clients, each sending a few requests
(OpenAI and Ollama streams, non-streaming calls) with malformed requests, raw garbage and
abrupt disconnects mixed in. Afterwards the server must still answer, hold no KV blocks, have
finished every request it accepted, and exit cleanly on SIGTERM. CI runs this file a second
time against the AddressSanitizer build (EDGELLM_BIN=build-asan/bin/edgellm), where a leak or
memory error makes the server's exit code non-zero. All traffic goes to 127.0.0.1."""
import concurrent.futures as cf
import json
import os
import random
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from net_util import free_port

requests = pytest.importorskip("requests", reason="requests is a test dependency")

BIN = os.environ.get("EDGELLM_BIN")
pytestmark = pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)")

N_CLIENTS = 16
REQUESTS_PER_CLIENT = 4


def metrics(url):
    text = requests.get(url + "/metrics", timeout=30).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(edgellm_\w+) (\S+)$", text, re.M)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = tmp_path_factory.mktemp("synth") / "tiny.gguf"
    subprocess.run([BIN, "synth", "--shape", "tiny", "--type", "q4_0", "-q", "-o", str(model)], check=True,
                   capture_output=True, timeout=300)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([BIN, "serve", "-m", str(model), "--port", str(port), "-t", "2", "--parallel", "4",
                             "-c", "1024", "--max-queue", "64"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.time() < deadline, "server did not come up"
        time.sleep(0.1)
    yield url, proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def stream_openai(url, rng):
    body = {"prompt": "hello " * rng.randint(1, 40), "max_tokens": rng.randint(4, 24), "temperature": 0.7,
            "seed": rng.randint(0, 1000), "stream": True}
    with requests.post(url + "/v1/completions", json=body, stream=True, timeout=120) as r:
        assert r.status_code in (200, 503), r.text
        if r.status_code == 503:
            return "busy"
        lines = [l for l in r.iter_lines() if l]
        assert lines[-1] == b"data: [DONE]", lines[-3:]
    return "ok"


def stream_ollama(url, rng):
    body = {"model": "tiny", "prompt": "world " * rng.randint(1, 30), "options": {"num_predict": rng.randint(4, 24)}}
    with requests.post(url + "/api/generate", json=body, stream=True, timeout=120) as r:
        if r.status_code == 503:
            return "busy"
        assert r.status_code == 200, r.text
        last = json.loads([l for l in r.iter_lines() if l][-1])
        assert last["done"] is True and last["eval_count"] >= 1
    return "ok"


def chat_blocking(url, rng):
    body = {"messages": [{"role": "user", "content": "hi " * rng.randint(1, 20)}], "max_tokens": rng.randint(2, 16)}
    r = requests.post(url + "/v1/chat/completions", json=body, timeout=120)
    if r.status_code == 503:
        return "busy"
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1
    return "ok"


def disconnect_mid_stream(url, rng):
    body = {"model": "tiny", "prompt": "bye", "options": {"num_predict": 400}}
    with requests.post(url + "/api/generate", json=body, stream=True, timeout=120) as r:
        if r.status_code == 503:
            return "busy"
        next(r.iter_lines())
    return "disconnect"


def malformed(url, rng):
    choice = rng.randint(0, 4)
    if choice == 0:
        r = requests.post(url + "/api/chat", data=b"{\"model\": \"tiny\", \"messages\": [", timeout=30)
    elif choice == 1:
        r = requests.post(url + "/v1/chat/completions", json={"messages": [{"role": 3}]}, timeout=30)
    elif choice == 2:
        r = requests.post(url + "/api/generate", data=bytes(rng.getrandbits(8) for _ in range(200)), timeout=30)
    elif choice == 3:
        r = requests.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": "many"}, timeout=30)
    else:
        r = requests.post(url + "/api/generate", json={"model": "tiny", "prompt": "x", "options": []}, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    return "malformed"


def raw_garbage(url, rng):
    host, port = url[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        if rng.random() < 0.5:
            s.sendall(b"GARBAGE \x00\xff NOT HTTP\r\n\r\n")
        else:
            # A body shorter than its Content-Length, then the connection closes.
            s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"model\": \"ti")
    return "garbage"


ACTIONS = [stream_openai, stream_ollama, chat_blocking, disconnect_mid_stream, malformed, raw_garbage]


def client(url, seed):
    rng = random.Random(seed)
    return [rng.choice(ACTIONS)(url, rng) for _ in range(REQUESTS_PER_CLIENT)]


def test_sixteen_clients_with_garbage_and_disconnects_leave_a_healthy_server(server):
    url, proc = server
    started = time.time()
    with cf.ThreadPoolExecutor(N_CLIENTS) as ex:
        outcomes = [o for res in ex.map(lambda i: client(url, i), range(N_CLIENTS)) for o in res]
    elapsed = time.time() - started
    assert proc.poll() is None, "the server died under load: " + proc.stderr.read()
    assert requests.get(url + "/health", timeout=10).json() == {"status": "ok"}
    # Every accepted sequence ends (disconnected ones are cancelled) and gives its blocks back.
    deadline = time.time() + 60
    while True:
        m = metrics(url)
        if m["edgellm_running_sequences"] == 0 and m["edgellm_queue_depth"] == 0:
            break
        assert time.time() < deadline, m
        time.sleep(0.1)
    assert m["edgellm_kv_blocks_used"] == 0, m
    assert m["edgellm_requests_finished_total"] == m["edgellm_requests_total"], m
    n_disconnect = outcomes.count("disconnect")
    assert m["edgellm_requests_cancelled_total"] >= min(1, n_disconnect), (outcomes, m)
    # Still serving correctly after all that.
    r = requests.post(url + "/v1/completions", json={"prompt": "hello", "max_tokens": 8, "temperature": 0}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 8
    print(f"{len(outcomes)} requests from {N_CLIENTS} clients in {elapsed:.1f} s: "
          + ", ".join(f"{k} {outcomes.count(k)}" for k in sorted(set(outcomes))))


def test_server_exits_cleanly_on_sigterm(server):
    url, proc = server
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the server did not stop within 60 s of SIGTERM")
    err = proc.stderr.read()
    assert proc.returncode == 0, err[-4000:]
    assert "ERROR: AddressSanitizer" not in err and "ERROR: LeakSanitizer" not in err, err[-4000:]
