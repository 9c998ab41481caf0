#!/usr/bin/env python3
"""edgellm vs llama.cpp on the same GGUF and thread count: prefill (ppN) and decode (tgN) tokens/s.

Models are `edgellm synth --shape SHAPE --type T` files (written once into --dir). edgellm is timed
by `edgellm run --json` (its own prefill/decode timers, no sampling); llama.cpp by wall-clock time
around llama-cpp-python's eval() (which only runs llama_decode; its llama_perf counters read 0 in
this build), so neither side is charged for sampling.
ppN: one prompt of N tokens from an empty cache (batch 512). tgN: N single-token decode steps
from a 1-token context, like llama-bench. Prints a Markdown table with edgellm/llama.cpp ratios and
the decode bandwidth achieved (weight bytes read per token x tokens/s).
--spec TARGET:DRAFT adds speculative-decoding rows: edgellm decoding the TARGET-type model with the
DRAFT-type model drafting (`run --model-draft`, --draft-max tokens per round) against llama.cpp's
plain decode of the same target (llama-cpp-python has no draft-model decoding), with the
acceptance rate; on random-weight synth models two different files rarely agree, so expect
little acceptance unless DRAFT == TARGET.

  python3 bench/compare_llamacpp.py --bin build/bin/edgellm --threads 2 --dir /tmp/cmp
"""
import argparse
import json
import os
import subprocess
import sys
import time


def synth(bin_path, shape, wtype, out_dir):
    path = os.path.join(out_dir, f"synth-{shape}-{wtype}.gguf")
    if not os.path.exists(path):
        print(f"writing {path} ...", file=sys.stderr)
        subprocess.run([bin_path, "synth", "--shape", shape, "--type", wtype, "-o", path, "-q"], check=True)
    return path


def prompt_ids(n, n_vocab=500):
    # BOS then a spread of ordinary ids; the content does not change the cost.
    return [1] + [3 + (i * 37) % (n_vocab - 3) for i in range(n - 1)]


def edgellm_run(bin_path, model, threads, ids, n_gen, draft=None, draft_max=8):
    args = [bin_path, "run", "-m", model, "--prompt-ids", " ".join(map(str, ids)), "-n", str(n_gen),
            "-t", str(threads), "-c", str(max(1024, len(ids) + n_gen + 8)), "-b", "512", "--temp", "0",
            "--ignore-eos", "--json"]
    if draft:
        args += ["--model-draft", draft, "--draft-max", str(draft_max)]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"edgellm run failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


class llama_cpp_runner:
    def __init__(self, model, threads):
        import llama_cpp
        self.lc = llama_cpp
        self.llm = llama_cpp.Llama(model_path=model, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads,
                                   n_threads_batch=threads, logits_all=False, verbose=False)

    def pp(self, ids):
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(ids)
        return len(ids) / (time.perf_counter() - t0)

    def tg(self, n):
        self.llm.reset()
        self.llm.eval([1])
        tok = 3
        t0 = time.perf_counter()
        for _ in range(n):
            self.llm.eval([tok])
            tok = 3 + (tok * 37) % 497
        return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("EDGELLM_BIN", "build/bin/edgellm"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--shape", default="tinyllama-1.1b")
    ap.add_argument("--types", nargs="+", default=["q4_0", "q4_k_m", "q8_0"])
    ap.add_argument("--tests", nargs="+", default=["pp128", "pp512", "tg32", "tg128"])
    ap.add_argument("--reps", type=int, default=1, help="runs per cell; the best is kept")
    ap.add_argument("--dir", default="/tmp/edgellm-compare")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--spec", nargs="*", default=[], metavar="TARGET:DRAFT",
                    help="speculative rows, e.g. q8_0:q8_0 (self-draft) q8_0:q4_0; only the tgN tests run for them")
    ap.add_argument("--draft-max", type=int, default=8)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("llama-cpp-python is not installed (pip install llama-cpp-python): it is the llama.cpp side")

    rows = []
    for spec in a.spec:
        target_type, draft_type = spec.split(":")
        target = synth(a.bin, a.shape, target_type, a.dir)
        draft = synth(a.bin, a.shape, draft_type, a.dir)
        runner = llama_cpp_runner(target, a.threads)
        for test in (t for t in a.tests if t.startswith("tg")):
            n = int(test[2:])
            ours, theirs, accepted = 0.0, 0.0, 0.0
            for _ in range(a.reps):
                j = edgellm_run(a.bin, target, a.threads, [1], n + 1, draft=draft, draft_max=a.draft_max)
                if j["decode_tokens_per_s"] > ours:
                    ours = j["decode_tokens_per_s"]
                    accepted = j["acceptance"]
                theirs = max(theirs, runner.tg(n))
            rows.append({"type": f"{target_type} + draft {draft_type} ({100 * accepted:.0f}% accepted)", "test": test,
                         "edgellm": ours, "llama_cpp": theirs, "ratio": ours / theirs if theirs else 0.0,
                         "weight_bytes": j["weight_bytes"], "kv_bytes": j["kv_bytes"],
                         "peak_rss_bytes": j["peak_rss_bytes"], "spec": True,
                         "file_bytes": os.path.getsize(target) + os.path.getsize(draft)})
            print(f"{spec} {test}: edgellm {ours:.2f} t/s ({100 * accepted:.0f}% accepted), llama.cpp {theirs:.2f} t/s",
                  file=sys.stderr)
        del runner
    for wtype in a.types:
        model = synth(a.bin, a.shape, wtype, a.dir)
        file_bytes = os.path.getsize(model)
        runner = llama_cpp_runner(model, a.threads)
        for test in a.tests:
            n = int(test[2:])
            ours, theirs, extra = 0.0, 0.0, {}
            for _ in range(a.reps):
                if test.startswith("pp"):
                    j = edgellm_run(a.bin, model, a.threads, prompt_ids(n), 1)
                    ours = max(ours, j["prefill_tokens_per_s"])
                    theirs = max(theirs, runner.pp(prompt_ids(n)))
                else:
                    j = edgellm_run(a.bin, model, a.threads, [1], n + 1)
                    ours = max(ours, j["decode_tokens_per_s"])
                    theirs = max(theirs, runner.tg(n))
                extra = {"weight_bytes": j["weight_bytes"], "kv_bytes": j["kv_bytes"],
                         "peak_rss_bytes": j["peak_rss_bytes"], "file_bytes": file_bytes}
            rows.append({"type": wtype, "test": test, "edgellm": ours, "llama_cpp": theirs,
                         "ratio": ours / theirs if theirs else 0.0, **extra})
            r = rows[-1]
            print(f"{wtype} {test}: edgellm {ours:.2f} t/s, llama.cpp {theirs:.2f} t/s, ratio {r['ratio']:.2f}",
                  file=sys.stderr)
        del runner

    print(f"\n{a.shape}, {a.threads} threads, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| type | test | edgellm t/s | llama.cpp t/s | ratio | edgellm GB/s | llama.cpp GB/s | peak RSS / budget |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        # Bandwidth only for plain decode: a speculative step reads the weights once for several tokens.
        gb = lambda tps: f"{r['weight_bytes'] * tps / 1e9:.2f}" if r["test"].startswith("tg") and not r.get("spec") else ""
        # A draft of the same shape has a KV cache as large as the target's.
        budget = r["file_bytes"] + r["kv_bytes"] * (2 if r.get("spec") else 1) + 100 * 2**20
        rss = f"{r['peak_rss_bytes'] / 2**20:.0f} / {budget / 2**20:.0f} MiB"
        print(f"| {r['type']} | {r['test']} | {r['edgellm']:.2f} | {r['llama_cpp']:.2f} | {r['ratio']:.2f} | "
              f"{gb(r['edgellm'])} | {gb(r['llama_cpp'])} | {rss} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
