#!/usr/bin/env python3
"""edgellm bench against llama.cpp's own llama-bench (and optionally ik_llama.cpp's) on the same
GGUF files, thread counts and tests: `llama-bench -m M -p P -n N -t T -r R -o json` next to
`edgellm bench -m M -p P -n N -t T -r R --json F`, the mean of the R repetitions on each side.

Models: the real trained test models (`real`: SmolLM2-135M-Instruct Q4_1 and Gemma-3-270M Q4_K_M
from scripts/fetch-models.sh), the synthetic ladder (`synth:TYPE`, `edgellm synth --shape
tinyllama-1.1b --type TYPE`, written once into --dir), or GGUF paths.

Per decode row it also prints the weight bandwidth (matrix bytes read per token x tokens/s) as a
percentage of this machine's memory read bandwidth at that moment (numpy sums over a 1 GiB buffer
in T threads, best of 5, measured before and after each round of a model's runs: on a shared VM
the host's bandwidth moves by half within minutes; the table shows the figure used). --rounds N
runs the sides N times in turn and keeps each side's best round. --busy adds a pass with a CPU-bound process on one core
(llama.cpp's spinning threads collapse under it; edgellm should degrade gently).

  python3 bench/compare_llama_bench.py --bin build/bin/edgellm --threads 1 2 --models real \\
      synth:q4_0 synth:q8_0 --md out/compare.md --json out/compare.json

llama-bench comes from scripts/build-llama-cpp.sh (the llama.cpp vendored by the pinned
llama-cpp-python sdist, built with its default flags without AMX). Run on an idle machine: with
2 cores any other process distorts both sides.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS_DIR = Path(os.environ.get("EDGELLM_TEST_MODELS", Path.home() / ".cache" / "edgellm" / "test-models"))
REAL = {"SmolLM2-135M Q4_1 (real)": MODELS_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf",
        "Gemma-3-270M Q4_K_M (real)": MODELS_DIR / "gemma-3-270m-q4_k_m.gguf"}


def default_llama_bench():
    cache = Path.home() / ".cache" / "edgellm"
    found = sorted(cache.glob("llama.cpp-*/bin/llama-bench"))
    if found:
        return str(found[-1])
    from shutil import which
    return which("llama-bench")


def resolve_models(specs, edgellm, out_dir):
    models = []  # (label, path)
    for spec in specs:
        if spec == "real":
            for label, path in REAL.items():
                if not path.exists():
                    sys.exit(f"{path} is missing: run scripts/fetch-models.sh")
                models.append((label, str(path)))
        elif spec.startswith("synth:"):
            wtype = spec.split(":", 1)[1]
            path = Path(out_dir) / f"synth-tinyllama-1.1b-{wtype}.gguf"
            if not path.exists():
                print(f"writing {path} ...", file=sys.stderr)
                args = [edgellm, "synth", "--shape", "tinyllama-1.1b", "--type", wtype, "-o", str(path) + ".tmp", "-q"]
                subprocess.run(args, check=True)
                os.replace(str(path) + ".tmp", path)
            models.append((f"synth TinyLlama {wtype.upper()}", str(path)))
        else:
            models.append((Path(spec).name, spec))
    return models


def read_bandwidth_gbs(threads, size_bytes=1 << 30, tries=5):
    """Best read bandwidth over `tries`: each of `threads` threads sums its share of one buffer
    (numpy releases the GIL in the reduction)."""
    import numpy as np
    buf = np.ones(size_bytes // 8, dtype=np.float64)
    parts = np.array_split(buf, threads)
    best = 0.0
    for _ in range(tries):
        ts = [threading.Thread(target=np.add.reduce, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = max(best, size_bytes / (time.perf_counter() - t0) / 1e9)
    return best


def llama_bench(exe, model, p, n, threads, reps):
    r = subprocess.run([exe, "-m", model, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", str(reps), "-o", "json"],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"{exe} failed on {model}: {r.stderr.strip()[-500:]}")
    out = {}
    for row in json.loads(r.stdout):
        key = f"pp{row['n_prompt']}" if row["n_prompt"] and not row["n_gen"] else f"tg{row['n_gen']}"
        out[key] = float(row["avg_ts"])
    return out


def edgellm_bench(exe, model, p, n, threads, reps):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.json")
        r = subprocess.run([exe, "bench", "-m", model, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", str(reps),
                            "-q", "--json", path], capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError(f"edgellm bench failed on {model}: {r.stderr.strip()[-500:]}")
        j = json.load(open(path))
    out = {}
    for m in j["micro"]:
        if m.get("error"):
            raise RuntimeError(f"edgellm bench on {model}: {m['error']}")
        key = f"pp{m['n_prompt']}" if m["n_prompt"] and not m["n_gen"] else f"tg{m['n_gen']}"
        out[key] = float(m["summary"]["mean"])
    return out


def weight_bytes(exe, model):
    r = subprocess.run([exe, "run", "-m", model, "-p", "", "-n", "1", "--temp", "0", "-t", "1", "--json"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"edgellm run failed on {model}: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)["weight_bytes"]


class busy_core:
    """A CPU-bound child process for the duration of a `with` block."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("EDGELLM_BIN", str(HERE.parent / "build/bin/edgellm")))
    ap.add_argument("--llama-bench", default=default_llama_bench(), help="llama.cpp's llama-bench")
    ap.add_argument("--ik-bench", help="ik_llama.cpp's llama-bench (an extra column)")
    ap.add_argument("--models", nargs="+", default=["real", "synth:q4_0"])
    ap.add_argument("--threads", nargs="+", type=int, default=[os.cpu_count()])
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the sides this many times in turn and keep each side's best round (default 1)")
    ap.add_argument("--busy", action="store_true", help="also a pass at the largest thread count with one core busy")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "edgellm-compare"))
    ap.add_argument("--md", help="write the Markdown table here too")
    ap.add_argument("--json", help="write the raw rows here")
    a = ap.parse_args()
    if not a.llama_bench or not os.path.exists(a.llama_bench):
        sys.exit("llama-bench not found: build it with scripts/build-llama-cpp.sh, or pass --llama-bench")
    os.makedirs(a.dir, exist_ok=True)
    models = resolve_models(a.models, a.bin, a.dir)

    passes = [(t, False) for t in a.threads] + ([(max(a.threads), True)] if a.busy else [])
    rows = []
    for label, path in models:
        wbytes = weight_bytes(a.bin, path)
        for threads, busy in passes:
            sides = {"edgellm": lambda: edgellm_bench(a.bin, path, a.p, a.n, threads, a.reps),
                     "llama.cpp": lambda: llama_bench(a.llama_bench, path, a.p, a.n, threads, a.reps)}
            if a.ik_bench:
                sides["ik_llama.cpp"] = lambda: llama_bench(a.ik_bench, path, a.p, a.n, threads, a.reps)
            got = {}
            # The host's memory bandwidth is not constant on a shared VM (this one moved between ~32
            # and ~60 GB/s at 2 threads within minutes): measure it before and after each round of
            # this model's runs and take the best for its decode rows. With --rounds N the sides run
            # N times in turn and each keeps its best round, so no side is judged on a bad window.
            bw = read_bandwidth_gbs(threads)
            for _ in range(a.rounds):
                for side, fn in sides.items():
                    if busy:
                        with busy_core():
                            res = fn()
                    else:
                        res = fn()
                    prev = got.setdefault(side, {})
                    for k, v in res.items():
                        prev[k] = max(prev.get(k, 0.0), v)
                bw = max(bw, read_bandwidth_gbs(threads))
            for test in (f"pp{a.p}", f"tg{a.n}"):
                row = {"model": label, "path": path, "threads": threads, "busy": busy, "test": test,
                       "weight_bytes": wbytes, **{side: got[side].get(test) for side in sides}}
                if test.startswith("tg"):
                    row["bandwidth_gbs"] = bw
                    row["edgellm_bw_pct"] = 100.0 * wbytes * row["edgellm"] / 1e9 / bw
                    row["llama_cpp_bw_pct"] = 100.0 * wbytes * row["llama.cpp"] / 1e9 / bw
                rows.append(row)
                print(f"{label} t={threads}{' busy' if busy else ''} {test}: " +
                      ", ".join(f"{s} {row[s]:.2f}" for s in sides), file=sys.stderr)

    ik = bool(a.ik_bench)
    lines = [f"edgellm bench vs llama-bench, -p {a.p} -n {a.n} -r {a.reps}" +
             (f", best of {a.rounds} interleaved rounds per side" if a.rounds > 1 else "") + ", "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; memory read bandwidth measured before and "
             "after each round of a model's runs at its thread count (the best)", "",
             "| model | threads | test | edgellm t/s | llama.cpp t/s | edgellm / llama.cpp |" +
             (" ik_llama.cpp t/s | edgellm / ik |" if ik else "") + " bandwidth GB/s | edgellm % of bandwidth | llama.cpp % of bandwidth |",
             "|---|---:|---|---:|---:|---:|" + ("---:|---:|" if ik else "") + "---:|---:|---:|"]
    for r in rows:
        pct = lambda k: f"{r[k]:.0f} %" if k in r else ""
        cells = [r["model"], f"{r['threads']}{' + busy core' if r['busy'] else ''}", r["test"],
                 f"{r['edgellm']:.2f}", f"{r['llama.cpp']:.2f}", f"{r['edgellm'] / r['llama.cpp']:.2f}"]
        if ik:
            cells += [f"{r['ik_llama.cpp']:.2f}", f"{r['edgellm'] / r['ik_llama.cpp']:.2f}"]
        cells += [f"{r['bandwidth_gbs']:.1f}" if "bandwidth_gbs" in r else "", pct("edgellm_bw_pct"), pct("llama_cpp_bw_pct")]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.md:
        Path(a.md).write_text(text)
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
