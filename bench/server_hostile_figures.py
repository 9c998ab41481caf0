#!/usr/bin/env python3
"""Issue #26's hostile-client figures for one `edgellm serve` binary (docs/server.md, "Limits and
security", quotes them for the build before and after the HTTP layer):

    python3 bench/server_hostile_figures.py BUILD/bin/edgellm [MODEL.gguf]

Loopback only. Each figure is printed as it is measured; a step that the server does not survive
in time prints "timeout". Not a CI test (tests/python/test_server_hostile.py asserts the fixed
behaviour); the numbers vary with the machine's load."""
import http.client
import json
import os
import signal
import socket
import statistics
import sys
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
import requests  # noqa: E402

os.environ["EDGELLM_BIN"] = sys.argv[1]
from net_util import Server  # noqa: E402

MODEL = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "shared/models/stories260K.gguf"
H = b"Host: localhost\r\n"


def rss(p):
    for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024


def exchange(port, payload, timeout=60):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            for i in range(0, len(payload), 1 << 20):
                s.sendall(payload[i:i + (1 << 20)])
        except OSError:
            pass
        data = b""
        try:
            while c := s.recv(65536):
                data += c
        except OSError:
            pass
    return data.decode("latin-1")


def status(resp):
    return resp.split(" ")[1] if resp.startswith("HTTP/") else "no answer"


def main():
    s = Server(MODEL, "--parallel", "4")
    base = rss(s.proc)
    print(f"RSS at start: {base:.0f} MB")
    # D1
    socks = []
    for _ in range(200):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"POST /api/show HTTP/1.1\r\n" + H + b"Content-Length: 100000\r\n\r\n{")
        socks.append(c)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        try:
            requests.get(s.url + "/health", timeout=5)
            times.append((time.perf_counter() - t) * 1000)
        except requests.RequestException:
            times.append(float("inf"))
    print(f"D1 /health during 200 slowloris connections: median {statistics.median(times):.1f} ms")
    for c in socks:
        c.close()
    time.sleep(0.5)
    # D2
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"a" * (1 << 20))
    r0 = rss(s.proc)
    st = status(exchange(s.port, b"POST /api/generate HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                         + chunk * 100 + b"0\r\n\r\n"))
    print(f"D2 100 MB chunked body: {st}, RSS {rss(s.proc) - r0:+.0f} MB")
    bomb = zlib.compress(b" " * (1 << 20), 9, wbits=31) * 256
    r0 = rss(s.proc)
    st = status(exchange(s.port, b"POST /api/show HTTP/1.1\r\n" + H + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                         % len(bomb) + bomb))
    print(f"D2 gzip of 256 MiB ({len(bomb) // 1024} KB on the wire): {st}, RSS {rss(s.proc) - r0:+.0f} MB")
    # D3
    r0 = rss(s.proc)
    st = status(exchange(s.port, b"GET /health HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(1000000)) + b"\r\n"))
    print(f"D3 10^6 headers: {st}, RSS {rss(s.proc) - r0:+.0f} MB")
    # D4
    body = json.dumps({"model": "stories260K", "prompt": "Once", "system": "x " * 4150, "stream": False,
                       "options": {"num_predict": 2}})
    r = requests.post(s.url + "/api/generate", data=body, timeout=60,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    print(f"D4 8.3 KB body as curl -d: {r.status_code}")
    # D5
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    t5 = []
    for _ in range(100):
        t = time.perf_counter()
        c.request("GET", "/health")
        c.getresponse().read()
        t5.append((time.perf_counter() - t) * 1000)
    c.close()
    print(f"D5 kept-alive /health median over 100: {statistics.median(t5):.2f} ms")
    # D6
    out = exchange(s.port, b"GET /health HTTP/1.1\r\n" + H + b"\r\nGET /health HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
                   timeout=5)
    print(f"D6 two pipelined requests: {out.count('HTTP/1.1 200')} answered")
    # D7
    for what, req in (("Content-Length: 59xyz", b"POST /api/show HTTP/1.1\r\n" + H + b"Content-Length: 59xyz\r\n\r\n{}"),
                      ("no Host", b"GET /v1/models HTTP/1.1\r\n\r\n")):
        print(f"D7 {what}: {status(exchange(s.port, req, timeout=5))}")
    rb = requests.post(s.url + "/api/show", data='{"model":"stories260K"}', timeout=10,
                       headers={"Range": "bytes=" + "0-," * 500 + "0-"})
    print(f"D7 Range with 501 parts on /api/show: {rb.status_code}, {len(rb.content)} bytes")
    # D8
    t = time.perf_counter()
    try:
        r = requests.post(s.url + "/api/generate", data="{" + ",".join(f'"k{i}":1' for i in range(200000)) + "}", timeout=60)
        print(f"D8 200k-key body: {r.status_code} in {time.perf_counter() - t:.2f} s")
    except requests.RequestException:
        print("D8 200k-key body: timeout (60 s)")
    print(f"D11 RSS after all this: {rss(s.proc):.0f} MB (start {base:.0f} MB)")
    s.proc.kill()  # a server still parsing D8's body would hold up a clean stop
    s.proc.wait()
    # D13, D14
    s = Server(MODEL, "--parallel", "1", "-t", "1")
    ends = []

    def stream(i):
        openai = i % 2 == 0
        body = {"model": "stories260K", "messages": [{"role": "user", "content": "Once"}], "stream": True}
        body.update({"max_tokens": 100000} if openai else {"options": {"num_predict": -1}})
        try:
            with requests.post(s.url + ("/v1/chat/completions" if openai else "/api/chat"), data=json.dumps(body),
                               stream=True, timeout=60) as r:
                lines = [ln.decode() for ln in r.iter_lines() if ln]
            proper = lines and (lines[-1] == "data: [DONE]" if openai else json.loads(lines[-1]).get("done"))
            ends.append("final record" if proper else "no final record")
        except Exception:
            ends.append("cut")

    th = [threading.Thread(target=stream, args=(i,)) for i in range(8)]
    for t in th:
        t.start()
    time.sleep(1.0)
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    slow.sendall(b"GET /health HTTP/1.1\r\n" + H)
    t0 = time.perf_counter()
    s.proc.send_signal(signal.SIGTERM)
    exited = None
    for _ in range(300):
        try:
            slow.sendall(b"X: y\r\n")
        except OSError:
            pass
        if s.proc.poll() is not None:
            exited = time.perf_counter() - t0
            break
        time.sleep(0.1)
    if exited is None:
        s.proc.kill()
    for t in th:
        t.join(timeout=30)
    print(f"D13 8 streams at SIGTERM: {', '.join(f'{ends.count(k)} {k}' for k in sorted(set(ends)))}")
    print(f"D14 exit after SIGTERM with a client trickling headers: "
          f"{'%.1f s' % exited if exited is not None else 'not within 30 s'}")


if __name__ == "__main__":
    main()
