#!/usr/bin/env python3
"""Embeddings throughput, edgellm vs llama.cpp, on the same GGUF and thread count.

Inputs are N sentences of mixed lengths (8 to ~120 tokens) built from a fixed word list. edgellm is
timed by `edgellm embed -f FILE` (its own wall time over tokenisation, the batched forward passes
and pooling, printed on stderr; model loading excluded); llama.cpp by wall-clock time around
llama-cpp-python's Llama.embed(list) (which also tokenises, batches up to n_batch tokens per
llama_decode and pools), model loading excluded. llama.cpp's batch is --llama-batch tokens (default
512, its best here: its encoder attention masks over the whole ubatch). Each side runs --runs times; the best run is
reported. Prints a Markdown table: inputs/s and tokens/s.

  python3 bench/compare_embeddings.py --bin build/bin/edgellm --model minilm.gguf --threads 2
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

WORDS = ("the a of model vector search query document retrieval answer cat dog runs quickly embedding "
         "sentence meaning similar different network language small edge device memory fast slow city "
         "river mountain music history science market price people time world data").split()


def make_inputs(n, seed=1):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice([6, 12, 24, 48, 96]))) + "." for _ in range(n)]


def bench_edgellm(bin_path, model, texts, threads, runs):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
        path = f.name
    best = None
    try:
        for _ in range(runs):
            r = subprocess.run([bin_path, "embed", "-m", model, "-f", path, "-t", str(threads)], capture_output=True,
                               text=True, check=True)
            m = re.search(r"(\d+) inputs, (\d+) tokens in ([\d.]+) ms", r.stderr)
            n_in, n_tok, ms = int(m.group(1)), int(m.group(2)), float(m.group(3))
            if best is None or ms < best[2]:
                best = (n_in, n_tok, ms)
    finally:
        os.unlink(path)
    return best


def bench_llama_cpp(model, texts, threads, runs, n_batch):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model, embedding=True, n_ctx=n_batch, n_batch=n_batch, n_ubatch=n_batch,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    n_tok = sum(len(llm.tokenize(t.encode())) for t in texts)
    best = None
    for _ in range(runs):
        t0 = time.perf_counter()
        llm.embed(texts)
        ms = (time.perf_counter() - t0) * 1e3
        best = ms if best is None else min(best, ms)
    llm.close()
    return len(texts), n_tok, best


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
    ap.add_argument("--llama-batch", type=int, default=512,
                    help="llama.cpp's n_batch = n_ubatch = n_ctx: tokens per llama_decode. Its non-causal attention "
                         "masks over the whole ubatch, so larger batches cost it quadratically more")
    ap.add_argument("--llama-server", default="",
                    help="also time one /v1/embeddings request with every input against `edgellm serve` and this "
                         "llama-server binary (--embeddings, 16 slots, -b/-ub 512: its best of 256, 512, 2048 here)")
    a = ap.parse_args()
    texts = make_inputs(a.inputs)
    rows = [("edgellm", *bench_edgellm(a.bin, a.model, texts, a.threads, a.runs))]
    try:
        rows.append((f"llama.cpp (llama-cpp-python embed, n_batch {a.llama_batch})",
                     *bench_llama_cpp(a.model, texts, a.threads, a.runs, a.llama_batch)))
    except ImportError:
        print("llama-cpp-python is not installed: llama.cpp row skipped", file=sys.stderr)
    if a.llama_server:
        rows += bench_servers(a.bin, a.llama_server, a.model, texts, a.threads, a.runs)
    print(f"model {os.path.basename(a.model)}, {a.threads} threads, {a.inputs} inputs, best of {a.runs}\n")
    print("| engine | inputs | tokens | ms | inputs/s | tokens/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n_in, n_tok, ms in rows:
        print(f"| {name} | {n_in} | {n_tok} | {ms:.0f} | {n_in / ms * 1e3:.1f} | {n_tok / ms * 1e3:.0f} |")


if __name__ == "__main__":
    main()
