"""Window-sized KV on a real sliding-window model (Gemma-3-270M: 15 of 18 layers with a 512
window): a prompt longer than window + rollback slack, so the window pool releases blocks, gives
the same greedy tokens as the full cache (--swa-full), with plain decoding in 512-token steps and
with n-gram drafts (KV rollback) in 128-token steps, from a smaller KV allocation."""
import json
import os
import subprocess
from pathlib import Path

import real_models

BIN = os.environ.get("EDGELLM_BIN", str(Path(__file__).resolve().parents[2] / "build" / "bin" / "edgellm"))

ANIMALS = ["fox", "dog", "cat", "owl", "bee", "elk", "ant", "yak"]
PROMPT = " ".join(f"On day {i} the {ANIMALS[i % 8]} walked {i % 5 + 1} miles to the river and counted "
                  f"{i * 7 % 31} stones." for i in range(1, 35)) + " Summarise the story of the animals:"


def run(model, *extra):
    out = subprocess.run([BIN, "run", "-m", str(model), "-c", "2048", "-p", PROMPT, "-n", "32", "--temp", "0",
                          "--ignore-eos", "--json", *extra], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_gemma3_window_sized_kv_generates_what_the_full_cache_does():
    model = real_models.require("gemma3")
    for extra in ([], ["--spec-ngram", "3", "-b", "128"]):
        win = run(model, *extra)
        full = run(model, *extra, "--swa-full")
        assert win["n_prompt"] > 512 + 64 + 16, "the prompt must outgrow window + slack"
        assert win["tokens"] == full["tokens"], extra
        assert len(win["tokens"]) == 32
        # -c 2048: 3 full layers x 2048 + 15 window layers x 1104 positions, 1 KiB each (F16).
        assert full["kv_bytes"] == 18 * 2048 * 1024
        assert win["kv_bytes"] == (3 * 2048 + 15 * 1104) * 1024


def test_gemma3_memory_plan_counts_the_kv_the_engine_allocates():
    model = real_models.require("gemma3")
    out = subprocess.run([BIN, "device", "-m", str(model), "-c", "32768", "--json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)["plan"]
    out = subprocess.run([BIN, "run", "-m", str(model), "-c", "32768", "-p", "Hello", "-n", "1", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kv = json.loads(out.stdout)["kv_bytes"]
    # 96 MiB for the 3 global layers + 15 window layers x 1104 positions x 1 KiB (llama.cpp: 111 MiB).
    assert kv == 117620736
    if plan["gpu"]["kv_bytes"] == 0:  # a CPU-only plan: the engine's cache exactly
        assert plan["host"]["kv_bytes"] == kv
    else:  # GPU layers keep the whole context
        assert plan["host"]["kv_bytes"] + plan["gpu"]["kv_bytes"] > kv
