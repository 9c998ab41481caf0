"""The HTML benchmark dashboard in a real browser: headless Chromium loads the report from a
file:// URL, takes a screenshot and dumps the rendered DOM; the test checks that every chart is
there with its series, that text is escaped, and that the page logs no console errors (it has
no scripts, and its Content-Security-Policy would log any blocked load)."""
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

TOOL = os.environ.get("EDGELLM_TOOL_bench_report_tool")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

pytestmark = [
    pytest.mark.skipif(not TOOL or not Path(TOOL).exists(),
                       reason="EDGELLM_TOOL_bench_report_tool not set (run through ctest)"),
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)"),
]


def chromium(tmp_path, url, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def console_messages(stderr):
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class DomSummary(HTMLParser):
    """Counts charts, their series and script elements in the rendered DOM."""

    def __init__(self):
        super().__init__()
        self.charts = []  # [title, n_series, n_bars, n_error_bars, n_lines]
        self.scripts = 0
        self.in_title = False
        self.svg_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "") or ""
        if tag == "script":
            self.scripts += 1
        if tag == "svg":
            self.svg_depth += 1
            self.charts.append([a.get("aria-label", ""), 0, 0, 0, 0])
        elif self.svg_depth:
            chart = self.charts[-1]
            if tag == "g" and cls == "series":
                chart[1] += 1
            elif tag == "rect" and cls == "bar":
                chart[2] += 1
            elif tag == "path" and cls == "error-bar":
                chart[3] += 1
            elif tag == "path" and cls == "line":
                chart[4] += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg_depth -= 1


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench-html")
    path = d / "report.html"
    subprocess.run([TOOL, "write", "--format", "html", "--out", str(path)], check=True, timeout=120)
    return path


def test_console_error_detection_works(tmp_path):
    """Control: a page with a script error must be caught, or the real check proves nothing."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefined_function()</script></body></html>")
    r = chromium(tmp_path, bad.as_uri(), "--dump-dom")
    assert any("undefined_function" in m for m in console_messages(r.stderr)), r.stderr[-2000:]


def test_dashboard_renders_charts_without_errors(report, tmp_path):
    r = chromium(tmp_path, report.as_uri(), "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert console_messages(r.stderr) == []
    dom = DomSummary()
    dom.feed(r.stdout)
    assert dom.scripts == 0
    charts = {c[0]: c for c in dom.charts}
    # Fixture: 2 backends x 2 models x 3 prompts x 3 runs on a GPU device, micro tests and sweeps.
    for title in ("Mean end-to-end latency", "Time to first token", "Decode speed", "Prefill speed",
                  "Peak resident memory (RSS)", "Peak GPU memory"):
        _, n_series, n_bars, n_err, _ = charts[title]
        assert n_series == 2, title  # one series per backend
        assert n_bars == 4, title    # one bar per backend and model
    assert charts["Mean end-to-end latency"][3] == 4  # error bars on every bar
    assert charts["Latency per prompt"][1:3] == [4, 12]
    micro = charts["Prefill / decode tests (llama-bench style)"]
    assert micro[1] == 4 and micro[2] == 12
    for title in ("Mean latency vs batch size", "Aggregate throughput vs batch size"):
        assert charts[title][1] == 2 and charts[title][4] == 2
    assert charts["Aggregate throughput vs concurrent requests"][1] == 1
    # Resource time series: 4 backend/model groups x (RSS, CPU, GPU memory, GPU utilisation, power).
    resource = [c for c in dom.charts if c[0] in ("Resident memory (RSS)", "CPU utilisation", "GPU memory",
                                                  "GPU utilisation", "Power")]
    assert len(resource) == 20
    assert all(c[1] >= 8 for c in resource)  # one line per run (one run failed and has none)
    assert len(dom.charts) == 7 + 1 + 4 + 20
    # The sample output's markup is shown as text, not parsed into elements.
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt;" in r.stdout
    assert re.search(r"<script>alert", r.stdout) is None


def test_screenshot(report, tmp_path):
    shot = tmp_path / "bench-report.png"
    r = chromium(tmp_path, report.as_uri(), "--window-size=1280,4200", f"--screenshot={shot}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert console_messages(r.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 4200)
    assert len(data) > 100_000  # a blank page compresses to a few KB; charts do not
    keep = os.environ.get("EDGELLM_BUILD_DIR")
    if keep and Path(keep).is_dir():
        shutil.copy(shot, Path(keep) / "bench-report-screenshot.png")
        shutil.copy(report, Path(keep) / "bench-report.html")


def test_report_without_gpu_or_power_shows_na_and_no_gpu_charts(report, tmp_path):
    """The same results as if measured on a machine with no GPU and no power reading, with one
    backend behind a server nobody could follow: its memory/CPU cells read n/a, no GPU, power
    or energy columns and charts appear, and the page still renders cleanly."""
    import json
    doc_path = tmp_path / "r.json"
    subprocess.run([TOOL, "write", "--format", "json", "--out", str(doc_path)], check=True, timeout=120)
    doc = json.loads(doc_path.read_text())
    for s in doc["samples"]:
        s.update(gpu_mem_bytes=0, gpu_util_pct=None, energy_j_per_token=None, power_source="")
        for p in s["resources"]:
            p.update(gpu_mem_bytes=0, gpu_util_pct=None, power_w=None)
        if s["backend"] == "llama_cpp":
            s.update(monitored_process="", peak_rss_bytes=0, cpu_pct=None, resources=[])
    doc_path.write_text(json.dumps(doc))
    html = tmp_path / "no-gpu.html"
    subprocess.run([TOOL, "convert", str(doc_path), "--format", "html", "--out", str(html)], check=True, timeout=120)
    r = chromium(tmp_path, html.as_uri(), "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert console_messages(r.stderr) == []
    dom = DomSummary()
    dom.feed(r.stdout)
    titles = [c[0] for c in dom.charts]
    assert not any(t in ("GPU memory", "GPU utilisation", "Power", "Peak GPU memory") for t in titles), titles
    # Only the two native groups have a time series: RSS and CPU each.
    assert titles.count("Resident memory (RSS)") == 2 and titles.count("CPU utilisation") == 2
    assert "J/token" not in r.stdout and "GPU MiB" not in r.stdout
    assert "memory and CPU not measured (no server process to follow)" in r.stdout
    assert r.stdout.count(">n/a</td>") >= 4  # RSS and CPU of both llama_cpp groups
