"""`edgellm bench` micro mode (-p/-n/-pg lists) and sweeps (--batch-sizes) end to end on a tiny
synthetic model: the JSON of both validates against docs/bench-schema.json, every test has the
requested repetitions of positive rates, the combinations are the ones asked for, the sweep's
aggregate tokens/s follows from its counts, the HTML has the batch-size line charts, llama-bench's
one-dash spellings (-pg, -ngl) work, prompt mode is unchanged without -p/-pg, and bad lists fail
with a clear message."""
import csv
import io
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is the JSON Schema oracle (pip install jsonschema)")

BIN = os.environ.get("EDGELLM_BIN")
SOURCE = Path(os.environ.get("EDGELLM_SOURCE_DIR", Path(__file__).resolve().parents[2]))

pytestmark = pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)")


def edgellm(*args, check=True, cwd=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600, check=check, cwd=cwd)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "tiny.gguf"
    edgellm("synth", "--shape", "tiny", "--type", "q4_0", "-q", "-o", str(path))
    return path


@pytest.fixture(scope="module")
def schema():
    return json.loads((SOURCE / "docs" / "bench-schema.json").read_text())


def test_micro_json_every_combination_with_its_repetitions(model, schema, tmp_path):
    r = edgellm("bench", "-m", str(model), "-p", "16,33", "-n", "5", "-pg", "9,4", "-t", "1,2", "-d", "0,7",
                "-ngl", "0", "-b", "8", "-r", "3", "-q", "--json", "m.json", "--csv", "m.csv", cwd=tmp_path)
    doc = json.loads((tmp_path / "m.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["settings"]["mode"] == "micro"
    assert doc["samples"] == [] and doc["sweeps"] == []
    micro = doc["micro"]
    # 2 threads x 2 depths x 4 tests (pp16, pp33, tg5, pp9+tg4).
    assert len(micro) == 16
    got = {(m["test"], m["n_threads"], m["n_depth"]) for m in micro}
    want = {(f"{t}{'' if d == 0 else f' @ d{d}'}", th, d)
            for t in ("pp16", "pp33", "tg5", "pp9+tg4") for th in (1, 2) for d in (0, 7)}
    assert got == want
    for m in micro:
        assert m["error"] == "" and m["backend"] == "native"
        assert m["n_batch"] == 8 and m["n_gpu_layers"] == 0
        assert len(m["tokens_per_s"]) == 3
        assert all(math.isfinite(v) and v > 0 for v in m["tokens_per_s"])
    # The console table has one row per test with mean ± std.
    assert r.stdout.count("±") >= 16 and "pp9+tg4 @ d7" in r.stdout
    rows = list(csv.DictReader(io.StringIO((tmp_path / "m.csv").read_text())))
    assert [row["kind"] for row in rows] == ["micro"] * 16


def test_micro_defaults_to_five_repetitions(model, tmp_path):
    r = edgellm("bench", "-m", str(model), "-n", "4", "-p", "8", "-t", "1", "-q", "--json", "-")
    doc = json.loads(r.stdout)
    assert [m["test"] for m in doc["micro"]] == ["pp8", "tg4"]
    assert all(len(m["tokens_per_s"]) == 5 for m in doc["micro"])


def test_batch_sweep_json_and_html(model, schema, tmp_path):
    edgellm("bench", "-m", str(model), "--batch-sizes", "1,2,4,8", "-n", "12", "-t", "1", "-r", "2", "-q",
            "--json", "s.json", "--html", "s.html", cwd=tmp_path)
    doc = json.loads((tmp_path / "s.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["settings"]["mode"] == "sweep" and doc["micro"] == []
    sweeps = doc["sweeps"]
    assert [p["n_parallel"] for p in sweeps] == [1, 2, 4, 8]
    for p in sweeps:
        assert p["error"] == "" and p["kind"] == "batch"
        assert len(p["latency_ms"]) == 2 * p["n_parallel"]
        assert p["n_gen_tokens"] == 2 * 12 * p["n_parallel"]
        assert all(0 < lat <= p["wall_ms"] for lat in p["latency_ms"])
        assert p["aggregate_tokens_per_s"] == pytest.approx(p["n_gen_tokens"] / (p["wall_ms"] / 1000.0), rel=1e-9)
    html = (tmp_path / "s.html").read_text()
    assert '<section id="sweeps"' in html
    section = html[html.index('<section id="sweeps"'):]
    section = section[:section.index("</section>")]
    assert section.count('<path class="line"') >= 2  # latency and throughput vs batch size
    assert "<script" not in html


def test_prompt_mode_unchanged_without_p(model, tmp_path):
    r = edgellm("bench", "-m", str(model), "-n", "3", "-r", "1", "--warmup", "0", "-q", "--json", "-")
    doc = json.loads(r.stdout)
    assert doc["settings"]["mode"] == "prompts" and doc["settings"]["n_predict"] == 3
    assert len(doc["samples"]) == 3 and doc["micro"] == [] and doc["sweeps"] == []
    assert all(0 < s["n_gen_tokens"] <= 3 for s in doc["samples"])


@pytest.mark.parametrize("args,message", [
    (["-p", "0"], "-p: 0 is out of range"),
    (["-p", "-4"], "-p: -4 is out of range"),
    (["-p", "abc"], "'abc' is not an integer"),
    (["-p", "64,"], "is not an integer"),
    (["-p", "8", "-n", "2.5"], "'2.5' is not an integer"),
    (["-p", "8", "-t", "0"], "-t: 0 is out of range"),
    (["-p", "8", "-b", "0"], "-b: 0 is out of range"),
    (["-p", "8", "-ngl", "-1"], "-ngl: -1 is out of range"),
    (["-p", "8", "-d", "x"], "-d: 'x' is not an integer"),
    (["-p", "8", "-r", "0"], "--runs must be at least 1"),
    (["-pg", "512"], "-pg wants two positive integers"),
    (["-d", "64"], "-d (context depth) applies to micro tests"),
    (["-n", "16,32"], "-n takes one value here"),
    (["--batch-sizes", "1,0"], "--batch-sizes: 0 is out of range"),
    (["--concurrency", "two"], "--concurrency: 'two' is not an integer"),
    (["-p", "8", "--batch-sizes", "2"], "separate runs"),
])
def test_bad_flags(model, args, message):
    r = edgellm("bench", "-m", str(model), "-q", *args, check=False)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr, r.stderr


def test_native_concurrency_says_what_to_use(model, schema):
    r = edgellm("bench", "-m", str(model), "--concurrency", "1,2", "-n", "2", "-q", "--json", "-", check=False)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert [p["n_parallel"] for p in doc["sweeps"]] == [1, 2]
    assert all("--batch-sizes" in p["error"] and p["latency_ms"] == [] for p in doc["sweeps"])


def test_micro_test_beyond_the_context_fails_alone(model, schema):
    # The tiny shape's context is 512: depth 600 cannot hold the test, depth 0 can.
    r = edgellm("bench", "-m", str(model), "-p", "16", "-d", "0,600", "-r", "2", "-q", "--json", "-")
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(schema).validate(doc)
    ok, bad = doc["micro"]
    assert ok["error"] == "" and len(ok["tokens_per_s"]) == 2
    assert "616 positions" in bad["error"] and bad["tokens_per_s"] == []
