#!/usr/bin/env python3
"""Embeddings throughput, edgellm vs llama.cpp, on the same GGUF, thread count and inputs.

The in-process rows come from `edgellm bench --embed` (the workload's one owner: N inputs of 6 to
96 words drawn with a fixed seed, edgellm's embedder vs llama-cpp-python's Llama.embed(list),
model loading excluded, a warm-up call then the best of --runs; llama.cpp's n_batch = n_ubatch =
n_ctx = 512, its best here, since its non-causal attention masks over the whole ubatch). With --llama-server this script
also times one /v1/embeddings request carrying every input (the inputs bench used, saved with
--embed-save-inputs) against `edgellm serve` and llama-server --embeddings. Prints a Markdown table:
inputs/s and tokens/s.

  python3 bench/compare_embeddings.py --bin build/bin/edgellm --model minilm.gguf --threads 2
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def bench_in_process(bin_path, model, threads, n_inputs, runs, inputs_path):
    """`edgellm bench --embed` for native and llama_cpp_python: rows (name, inputs, tokens, ms)."""
    with tempfile.TemporaryDirectory() as d:
        report = os.path.join(d, "embed.json")
        r = subprocess.run([bin_path, "bench", "--embed", "-m", model, "--backends", "native", "llama_cpp_python",
                            "-t", str(threads), "--embed-inputs", str(n_inputs), "--runs",
                            str(runs), "--json", report, "--embed-save-inputs", inputs_path, "-q"],
                           capture_output=True, text=True)
        if r.returncode != 0 and not os.path.exists(report):
            sys.exit(f"edgellm bench --embed failed:\n{r.stderr}")
        rows = []
        for x in json.load(open(report))["results"]:
            name = {"native": "edgellm (bench --embed, native)",
                    "llama_cpp_python": "llama.cpp (llama-cpp-python embed, n_batch 512)"}[x["backend"]]
            if "error" in x:
                print(f"{x['backend']}: {x['error']}", file=sys.stderr)
                continue
            rows.append((name, x["n_inputs"], x["n_tokens"], x["best_ms"]))
        return rows


def _serve_and_time(cmd, port, texts, runs):
    import requests
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} did not come up")
            time.sleep(0.2)
        best, n_tok = None, 0
        for _ in range(runs):
            t0 = time.perf_counter()
            r = requests.post(url + "/v1/embeddings", json={"input": texts, "encoding_format": "float"}, timeout=600)
            ms = (time.perf_counter() - t0) * 1e3
            r.raise_for_status()
            n_tok = r.json()["usage"]["prompt_tokens"]
            best = ms if best is None else min(best, ms)
        return len(texts), n_tok, best
    finally:
        proc.terminate()
        proc.wait()


def bench_servers(bin_path, llama_server, model, texts, threads, runs):
    """One /v1/embeddings request with every input, to `edgellm serve` and to llama-server --embeddings."""
    import socket
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    rows = [("edgellm serve /v1/embeddings",
             *_serve_and_time([bin_path, "serve", "-m", model, "--port", str(ports[0]), "-t", str(threads)], ports[0],
                              texts, runs))]
    if llama_server:
        rows.append(("llama-server --embeddings /v1/embeddings",
                     *_serve_and_time([llama_server, "-m", model, "--embeddings", "--port", str(ports[1]), "-t",
                                       str(threads), "-tb", str(threads), "-c", "8192", "-np", "16", "-b", "512",
                                       "-ub", "512"], ports[1], texts, runs)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/bin/edgellm")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inputs", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--llama-server", default="",
                    help="also time one /v1/embeddings request with every input against `edgellm serve` and this "
                         "llama-server binary (--embeddings, 16 slots, -b/-ub 512: its best of 256, 512, 2048 here)")
    a = ap.parse_args()
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
        rows = bench_in_process(a.bin, a.model, a.threads, a.inputs, a.runs, f.name)
        texts = [line for line in open(f.name, encoding="utf-8").read().split("\n") if line]
    if a.llama_server:
        rows += bench_servers(a.bin, a.llama_server, a.model, texts, a.threads, a.runs)
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"]
    print(f"model {os.path.basename(a.model)}, {a.threads} threads, {a.inputs} inputs, best of {a.runs}, "
          f"load average after the runs {' '.join(load)}\n")
    print("| engine | inputs | tokens | ms | inputs/s | tokens/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n_in, n_tok, ms in rows:
        print(f"| {name} | {n_in} | {n_tok} | {ms:.0f} | {n_in / ms * 1e3:.1f} | {n_tok / ms * 1e3:.0f} |")


if __name__ == "__main__":
    main()
