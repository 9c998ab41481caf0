"""Hostile and careless clients against `edgellm serve` (issue #26's reproducers that this HTTP
layer fixes; loopback only, bounded): kept-alive requests answered without the 40 ms Nagle stall
(D5), numbers too large or truncated (D9, D10), Host and Origin checks against DNS rebinding and
CSRF plus CORS preflight (D12), the API key from a file or the environment and a lowercase
scheme (D15). Run against the ASan+UBSan build in CI as well (.ci/run)."""
import http.client
import json
import os
import socket
import statistics
import subprocess
import time
from pathlib import Path

import pytest
import requests

from net_util import Server

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
MODEL = SHARED / "models" / "stories260K.gguf"

pytestmark = [
    pytest.mark.skipif(not BIN, reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (the shared test models)"),
]


@pytest.fixture(scope="module")
def srv():
    s = Server(MODEL)
    yield s
    s.stop()


def gen(srv, options, api="/api/generate"):
    body = {"model": "stories260K", "prompt": "Once", "stream": False, "options": options}
    return requests.post(srv.url + api, data=json.dumps(body), timeout=30)


def test_d5_kept_alive_requests_do_not_stall(srv):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    times = []
    for _ in range(100):
        t = time.perf_counter()
        c.request("GET", "/health")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b'{"status":"ok"}'
        times.append((time.perf_counter() - t) * 1000)
    c.close()
    # Nagle + delayed ACK made every one of these ~40 ms; without it they take a fraction of 1 ms.
    assert statistics.median(times) < 2.0, sorted(times)[:10]


@pytest.mark.parametrize("options,field", [
    ({"top_k": 4294967301}, "top_k"),                    # was used as 5
    ({"num_predict": 2**63}, "num_predict"),             # wrapped to "unlimited"
    ({"num_predict": 1e30}, "num_predict"),              # a double cast to int64: undefined behaviour
    ({"repeat_last_n": -5}, "repeat_last_n"),
    ({"seed": -(2**63) - 1}, "seed"),
])
def test_d10_integers_out_of_range_are_400_naming_the_field(srv, options, field):
    r = gen(srv, options)
    assert r.status_code == 400 and field in r.json()["error"], r.text


def test_d9_number_overflow_is_400_not_500(srv):
    r = requests.post(srv.url + "/api/generate", timeout=30,
                      data='{"model":"stories260K","prompt":"x","options":{"temperature":1e400}}')
    assert r.status_code == 400 and "number overflow" in r.json()["error"]
    r = requests.post(srv.url + "/v1/completions", timeout=30, data='{"prompt":"x","max_tokens":1e400}')
    assert r.status_code == 400 and "number overflow" in r.json()["error"]["message"]


def test_d10_full_range_seed_is_accepted(srv):
    r = gen(srv, {"seed": 2**64 - 1, "num_predict": 2})
    assert r.status_code == 200, r.text


def raw(port, request: bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode("latin-1")


def test_d12_dns_rebinding_host_is_refused(srv):
    r = requests.get(srv.url + "/api/tags", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 403 and "DNS rebinding" in r.json()["error"]
    for host in ("localhost", f"localhost:{srv.port}", f"127.0.0.1:{srv.port}", f"[::1]:{srv.port}", "app.localhost"):
        assert requests.get(srv.url + "/api/tags", headers={"Host": host}, timeout=10).status_code == 200, host
    # HTTP/1.0 without Host is a plain client, not a browser.
    assert raw(srv.port, b"GET /health HTTP/1.0\r\n\r\n").startswith("HTTP/1.1 200")


def test_d12_cross_site_request_is_refused(srv):
    # A web page's form/fetch with text/plain: no preflight, so the server must refuse it itself.
    body = json.dumps({"model": "stories260K", "prompt": "x", "stream": False})
    r = requests.post(srv.url + "/api/generate", data=body, timeout=10,
                      headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert r.status_code == 403 and "origin 'http://evil.example' is not allowed" in r.json()["error"]
    r = requests.post(srv.url + "/v1/completions", data='{"prompt":"x"}', timeout=10, headers={"Origin": "null"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert srv.metrics()["edgellm_requests_total"] == srv.metrics()["edgellm_requests_total"]  # nothing queued
    # A loopback origin (a local dev server, the chat page itself) passes, with CORS headers.
    r = requests.post(srv.url + "/api/generate", data=body, timeout=30, headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    r = requests.options(srv.url + "/v1/chat/completions", timeout=10, headers={
        "Origin": "http://127.0.0.1:8080", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status_code == 204 and "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    r = requests.options(srv.url + "/v1/chat/completions", timeout=10, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_d12_allowed_origins_flag():
    s = Server(MODEL, "--allowed-origins", "http://192.168.1.20:3000,https://app.example")
    try:
        for origin, status in (("http://192.168.1.20:3000", 200), ("https://app.example", 200),
                               ("http://192.168.1.20:3001", 403)):
            r = requests.get(s.url + "/api/tags", headers={"Origin": origin}, timeout=10)
            assert r.status_code == status, origin
    finally:
        s.stop()


def test_d15_api_key_from_file_or_environment_and_any_scheme_case(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("file-secret\n")
    s = Server(MODEL, "--api-key-file", str(key_file))
    try:
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(s.proc.pid)], capture_output=True, text=True).stdout
        assert "file-secret" not in ps
        for scheme in ("Bearer", "bearer", "BEARER"):
            r = requests.get(s.url + "/v1/models", headers={"Authorization": f"{scheme} file-secret"}, timeout=10)
            assert r.status_code == 200, scheme
        assert requests.get(s.url + "/v1/models", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert requests.get(s.url + "/v1/models", headers={"Authorization": "Basic file-secret"}, timeout=10).status_code == 401
        assert requests.get(s.url + "/v1/models", timeout=10).status_code == 401
    finally:
        s.stop()
    os.environ["EDGELLM_API_KEY"] = "env-secret"
    try:
        s = Server(MODEL)
    finally:
        del os.environ["EDGELLM_API_KEY"]
    try:
        assert requests.get(s.url + "/v1/models", headers={"Authorization": "bearer env-secret"}, timeout=10).status_code == 200
        assert requests.get(s.url + "/v1/models", timeout=10).status_code == 401
    finally:
        s.stop()
    p = subprocess.run([BIN, "serve", "-m", str(MODEL), "--api-key-file", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "cannot read --api-key-file" in p.stderr
