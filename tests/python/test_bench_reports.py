"""Benchmark report formats: JSON validated against docs/bench-schema.json (jsonschema as the
oracle), CSV parsed by Python's csv module, Markdown, stdout output and report comparison.
The reports come from tests/tools/bench_report_tool.cpp (a fixed synthetic result set)."""
import csv
import io
import json
import os
import statistics
import subprocess
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is the JSON Schema oracle (pip install jsonschema)")

TOOL = os.environ.get("EDGELLM_TOOL_bench_report_tool")
SOURCE = Path(os.environ.get("EDGELLM_SOURCE_DIR", Path(__file__).resolve().parents[2]))
SCHEMA_PATH = SOURCE / "docs" / "bench-schema.json"

pytestmark = pytest.mark.skipif(not TOOL or not Path(TOOL).exists(),
                                reason="EDGELLM_TOOL_bench_report_tool not set (run through ctest)")


def tool(*args, check=True):
    return subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="module")
def schema():
    s = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(s)
    return s


@pytest.fixture(scope="module")
def report_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "r.json"
    tool("write", "--format", "json", "--out", str(path))
    return path


def test_json_report_validates_against_schema(schema, report_json):
    doc = json.loads(report_json.read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["schema"] == "edgellm.bench/v1"
    assert len(doc["samples"]) == 2 * 2 * 3 * 3
    assert {s["backend"] for s in doc["samples"]} == {"native", "llama_cpp"}


def test_schema_rejects_broken_reports(schema, report_json):
    v = jsonschema.Draft202012Validator(schema)
    doc = json.loads(report_json.read_text())
    for mutate in (lambda d: d.pop("system"),
                   lambda d: d["samples"][0].pop("ttft_ms"),
                   lambda d: d["samples"][0].update(n_gen_tokens="64"),
                   lambda d: d.update(schema="edgellm.bench/v2"),
                   lambda d: d["micro"][0].update(test="prefill512"),
                   lambda d: d["sweeps"][0].update(kind="parallel")):
        broken = json.loads(json.dumps(doc))
        mutate(broken)
        assert not v.is_valid(broken)


def test_json_summaries_match_python_statistics(report_json):
    """The derived summaries agree with an independent computation (numpy-style percentiles)."""
    doc = json.loads(report_json.read_text())
    for g in doc["summary"]["groups"]:
        lat = [s["latency_ms"] for s in doc["samples"]
               if s["backend"] == g["backend"] and s["model"] == g["model"] and not s["error"]]
        assert g["n_runs"] == len(lat)
        assert g["latency_ms"]["mean"] == pytest.approx(statistics.fmean(lat), rel=1e-12)
        assert g["latency_ms"]["std"] == pytest.approx(statistics.stdev(lat), rel=1e-9)
        q = statistics.quantiles(lat, n=20, method="inclusive")  # inclusive = numpy "linear"
        assert g["latency_ms"]["p95"] == pytest.approx(q[18], rel=1e-12)
        assert g["latency_ms"]["p50"] == pytest.approx(statistics.median(lat), rel=1e-12)
    failed = [g for g in doc["summary"]["groups"] if g["n_failed"]]
    assert len(failed) == 1 and failed[0]["backend"] == "llama_cpp"


def test_json_round_trip_through_reader(schema, report_json, tmp_path):
    again = tmp_path / "again.json"
    tool("convert", str(report_json), "--format", "json", "--out", str(again))
    assert json.loads(again.read_text()) == json.loads(report_json.read_text())


def test_csv_is_one_tidy_table(report_json):
    text = tool("convert", str(report_json), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("run") == 36 and kinds.count("micro") == 12 and kinds.count("sweep") == 12
    doc = json.loads(report_json.read_text())
    for r, s in zip(rows, doc["samples"]):
        assert float(r["latency_ms"]) == pytest.approx(s["latency_ms"])
        assert r["output_sample"] == s["output_sample"]  # quotes, commas and newlines survive
    micro = [r for r in rows if r["kind"] == "micro"]
    assert {r["test"] for r in micro} == {"pp64", "tg32", "pp64+tg32"}
    assert any(r["error"] for r in rows if r["kind"] == "run")


def test_markdown_and_stdout(report_json, tmp_path):
    md = tool("convert", str(report_json), "--format", "md", "--out", "-").stdout
    assert md.startswith("# edgellm benchmark")
    table = [line for line in md.splitlines() if line.startswith("| native") or line.startswith("| llama_cpp")]
    assert len(table) >= 4
    assert all(line.count("|") == table[0].count("|") for line in table[:4])
    console = tool("convert", str(report_json), "--format", "console").stdout
    assert "decode speed: best native / synth-llama-q4_0.gguf" in console
    assert "failed: llama_cpp / synth-llama-q4_0.gguf prompt long run 2" in console


def test_compare_flags_a_slower_candidate(report_json, tmp_path):
    slow = tmp_path / "slow.json"
    tool("write", "--format", "json", "--slowdown", "1.25", "--out", str(slow))
    same = tool("compare", str(report_json), str(report_json))
    assert same.returncode == 0 and "no regressions beyond 5.0%" in same.stdout
    worse = tool("compare", str(report_json), str(slow), check=False)
    assert worse.returncode == 2, worse.stderr
    assert "REGRESSION" in worse.stdout
    decode_rows = [line for line in worse.stdout.splitlines() if "decode_tokens_per_s" in line]
    assert decode_rows and all("REGRESSION" in line and "0.800" in line for line in decode_rows)
    loose = tool("compare", str(report_json), str(slow), "--threshold", "30")
    assert loose.returncode == 0
    better = tool("compare", str(slow), str(report_json))
    assert better.returncode == 0 and "improved" in better.stdout


def test_bad_report_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "edgellm.bench/v1", "samples": [{"backend": 3}]}')
    r = tool("convert", str(bad), "--format", "md", check=False)
    assert r.returncode == 1
    assert "$.samples[0].backend must be a string" in r.stderr and "bad.json" in r.stderr
    r = tool("convert", str(tmp_path / "missing.json"), "--format", "md", check=False)
    assert r.returncode == 1 and "cannot open bench report" in r.stderr
