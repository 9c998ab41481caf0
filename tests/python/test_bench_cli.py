"""`edgellm bench` end to end on a real model (stories260K from ../shared): every report format,
the JSON validated against docs/bench-schema.json, `-` as stdout, an unavailable backend that is
reported while the others go on, and `--compare`."""
import csv
import io
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is the JSON Schema oracle (pip install jsonschema)")

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
SOURCE = Path(os.environ.get("EDGELLM_SOURCE_DIR", Path(__file__).resolve().parents[2]))
MODEL = SHARED / "models" / "stories260K.gguf"

pytestmark = [
    pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"reference model missing: {MODEL}"),
]


def bench(*args, check=True, cwd=None):
    return subprocess.run([BIN, "bench", *args], capture_output=True, text=True, timeout=600, check=check, cwd=cwd)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("tiny\tOnce upon a time\nlonger\tThe little dog ran to the park and saw a big red ball\n")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, prompts):
    d = tmp_path_factory.mktemp("bench-cli")
    r = bench("-m", str(MODEL), "--prompts", str(prompts), "--runs", "2", "--warmup", "1", "-n", "12", "-t", "1",
              "--json", "r.json", "--csv", "r.csv", "--md", "r.md", "--html", "r.html", cwd=d)
    (d / "stdout.txt").write_text(r.stdout)
    return d


def test_console_table_and_every_format(run_dir):
    out = (run_dir / "stdout.txt").read_text()
    assert "edgellm bench (edgellm.bench/v1)" in out
    assert "stories260K.gguf" in out and "decode tok/s" in out
    schema = json.loads((SOURCE / "docs" / "bench-schema.json").read_text())
    doc = json.loads((run_dir / "r.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    samples = doc["samples"]
    assert len(samples) == 2 * 2
    assert {s["prompt_id"] for s in samples} == {"tiny", "longer"}
    for s in samples:
        assert s["error"] == ""
        assert 0 < s["n_gen_tokens"] <= 12
        assert s["n_prompt_tokens"] > 0
        assert 0 < s["ttft_ms"] <= s["latency_ms"]
        assert s["decode_tokens_per_s"] > 0 and s["prefill_tokens_per_s"] > 0
        assert s["peak_rss_bytes"] > 1 << 20
        assert len(s["resources"]) >= 2  # in-process sampler: start and end at least
        # CPU time of this process over the run (getrusage), even for a run of a few ms: a
        # figure, never the 0.0 of a sampler that did not tick.
        assert s["cpu_pct"] is not None and s["cpu_pct"] > 0, (s["cpu_pct"], s["notes"])
    # Greedy decoding (default --temp 0): the same prompt gives the same text on every run.
    for pid in ("tiny", "longer"):
        texts = {s["output_sample"] for s in samples if s["prompt_id"] == pid}
        assert len(texts) == 1
    rows = list(csv.DictReader(io.StringIO((run_dir / "r.csv").read_text())))
    assert [r["kind"] for r in rows] == ["run"] * 4
    assert (run_dir / "r.md").read_text().startswith("# edgellm benchmark")
    html = (run_dir / "r.html").read_text()
    assert html.count("<svg") >= 5 and "<script" not in html


def test_json_to_stdout_is_clean(prompts, tmp_path):
    r = bench("-m", str(MODEL), "--prompts", str(prompts), "--runs", "1", "--warmup", "0", "-n", "4", "-q",
              "--json", "-")
    doc = json.loads(r.stdout)  # nothing but the JSON on stdout
    assert doc["schema"] == "edgellm.bench/v1" and len(doc["samples"]) == 2


def test_unavailable_backend_is_reported_and_others_continue(prompts, tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = bench("--backends", "native", "ollama", "-m", str(MODEL), "--prompts", str(prompts), "--runs", "1",
              "--warmup", "0", "-n", "4", "--url", f"http://127.0.0.1:{port}", "--json", str(tmp_path / "r.json"))
    assert "warning: ollama" in r.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    ollama = [s for s in doc["samples"] if s["backend"] == "ollama"]
    native = [s for s in doc["samples"] if s["backend"] == "native"]
    assert ollama and all(s["error"] for s in ollama)
    assert len(native) == 2 and all(not s["error"] for s in native)


def test_compare_and_bad_input(run_dir):
    r = bench("--compare", str(run_dir / "r.json"), str(run_dir / "r.json"))
    assert "no regressions beyond 5.0%" in r.stdout
    bad = bench("-m", str(MODEL), "--runs", "0", check=False)
    assert bad.returncode != 0 and "--runs must be at least 1" in bad.stderr
    missing = bench("--compare", str(run_dir / "r.json"), str(run_dir / "absent.json"), check=False)
    assert missing.returncode == 1 and "cannot open bench report" in missing.stderr
    nomodel = bench("-m", str(run_dir / "absent.gguf"), "--runs", "1", "-n", "2", "-q", check=False)
    assert nomodel.returncode == 1 and "no run succeeded" in nomodel.stderr


def test_defaults_benchmark_a_cached_synthetic_model(tmp_path):
    """`edgellm bench` alone: native engine, a generated synthetic model (cached), table + HTML."""
    env = dict(os.environ, EDGELLM_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([BIN, "bench", "--runs", "1", "--warmup", "0", "-n", "8"], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path, env=env, check=True)
    assert "synth-tiny-q4_0.gguf" in r.stdout and "decode tok/s" in r.stdout
    assert (tmp_path / "cache" / "synth-tiny-q4_0.gguf").exists()
    html = (tmp_path / "edgellm-bench.html").read_text()
    assert html.count("<svg") >= 5
    assert "generating synthetic model" in r.stderr
    again = subprocess.run([BIN, "bench", "--runs", "1", "--warmup", "0", "-n", "4", "--md", "-"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env, check=True)
    assert "generating synthetic model" not in again.stderr  # cached
    assert again.stdout.startswith("# edgellm benchmark")


def test_memory_limit_takes_the_fallback_chain_and_reports_the_rung(prompts, tmp_path):
    # stories260K's KV cache is 640 bytes per position at F16 (5 layers, K and V, 32 values):
    # the file plus 200 000 bytes holds 256 positions but not the 512 asked for.
    limit = str(MODEL.stat().st_size + 200000)
    run = subprocess.run([BIN, "run", "-m", str(MODEL), "-p", "hi", "-n", "2", "-c", "512", "--memory-limit", limit,
                          "--json"], capture_output=True, text=True, timeout=120, check=True)
    rung = json.loads(run.stdout)["fallback"]
    assert rung.startswith("fallback: F16 KV cache, context 256"), rung
    r = bench("-m", str(MODEL), "--prompts", str(prompts), "--runs", "1", "--warmup", "0", "-n", "4", "-c", "512",
              "--memory-limit", limit, "--json", str(tmp_path / "r.json"))
    assert f"stories260K.gguf: {rung}" in r.stdout  # the note under the results table
    doc = json.loads((tmp_path / "r.json").read_text())
    jsonschema.Draft202012Validator(json.loads((SOURCE / "docs" / "bench-schema.json").read_text())).validate(doc)
    assert [s["load_note"] for s in doc["samples"]] == [rung, rung]
    assert all(not s["error"] for s in doc["samples"])
    # Without a limit nothing falls back; --no-fallback refuses, naming what did not fit.
    plain = json.loads(bench("-m", str(MODEL), "--prompts", str(prompts), "--runs", "1", "--warmup", "0", "-n", "2",
                             "-c", "512", "-q", "--json", "-").stdout)
    assert all(s["load_note"] == "" for s in plain["samples"])
    refused = bench("-m", str(MODEL), "--prompts", str(prompts), "--runs", "1", "--warmup", "0", "-n", "2", "-c", "512",
                    "--memory-limit", limit, "--no-fallback", "-q", "--json", "-", check=False)
    assert refused.returncode == 1
    assert all("not enough memory" in s["error"] for s in json.loads(refused.stdout)["samples"])
    micro = bench("-m", str(MODEL), "-p", "16", "--memory-limit", limit, check=False)
    assert micro.returncode != 0 and "apply to prompt mode" in micro.stderr


def test_chat_sends_each_prompt_through_the_models_template(tmp_path):
    """An instruct model given a bare prompt may end at once (SmolLM2-Instruct does on the built-in
    'medium' prompt: no decode speed at all); with --chat each prompt is a user message formatted
    by the model's template, and the model answers every one."""
    import real_models
    model = real_models.require("smollm2")
    out = tmp_path / "chat.json"
    r = bench("-m", str(model), "--chat", "-r", "1", "--warmup", "0", "-n", "8", "-t", "2", "--json", str(out), "-q")
    j = json.loads(out.read_text())
    assert j["settings"]["prompt_set"] == "builtin (as chat messages)"
    assert "prompts builtin (as chat messages)" in r.stdout
    assert {s["prompt_id"] for s in j["samples"]} == {"short", "medium", "long"}
    for s in j["samples"]:
        assert not s["error"], s["error"]
        assert s["n_gen_tokens"] >= 2 and s["decode_tokens_per_s"] > 0, (s["prompt_id"], s["output_sample"])
    # Micro tests and sweeps have no prompts to format: refused, not ignored.
    r = bench("-m", str(MODEL), "--chat", "-p", "16", "-n", "4", check=False)
    assert r.returncode != 0 and "--chat applies to prompt mode" in r.stderr
