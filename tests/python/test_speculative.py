"""`edgellm run --model-draft` and `edgellm bench --model-draft` end to end: at --temp 0 the text
equals plain greedy decoding for a quantized copy of the model, for the model itself and for a
different model that shares the vocabulary (a synthetic model built on stories260K's tokenizer);
acceptance is reported; a draft with another vocabulary is refused with a message."""
import json
import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"

pytestmark = [
    pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} is missing (the shared/ folder is not beside the project)"),
]


def edgellm(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)


def run(model, *extra, n=120):
    r = edgellm("run", "-m", str(model), "-p", "Once upon a time", "-n", str(n), "--temp", "0", "-t", "2", "--json",
                *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def drafts(tmp_path_factory):
    d = tmp_path_factory.mktemp("drafts")
    q4 = d / "stories-q4_0.gguf"
    assert edgellm("quantize", str(STORIES), str(q4), "q4_0", "-q").returncode == 0
    other = d / "synth-stories-vocab.gguf"
    r = edgellm("synth", "--shape", "tiny", "--type", "f32", "--vocab-from", str(STORIES), "-q", "-o", str(other))
    assert r.returncode == 0, r.stderr
    return {"q4_0": q4, "self": STORIES, "other": other}


@pytest.mark.parametrize("which", ["q4_0", "self", "other"])
def test_greedy_text_is_unchanged_by_the_draft(drafts, which):
    plain = run(STORIES)
    spec = run(STORIES, "--model-draft", str(drafts[which]), "--draft-max", "6")
    assert spec["tokens"] == plain["tokens"] and spec["text"] == plain["text"]
    assert spec["n_drafted"] > 0 and 0 <= spec["n_accepted"] <= spec["n_drafted"]
    if which == "self":
        assert spec["acceptance"] == 1.0
    # The other direction too: stories260K drafting for the synthetic model.
    if which == "other":
        assert run(drafts["other"], "--model-draft", str(STORIES))["tokens"] == run(drafts["other"])["tokens"]


def test_other_vocabulary_is_refused(tmp_path):
    synth = tmp_path / "builtin-vocab.gguf"
    assert edgellm("synth", "--shape", "tiny", "--type", "q8_0", "-q", "-o", str(synth)).returncode == 0
    r = edgellm("run", "-m", str(STORIES), "--model-draft", str(synth), "-p", "hi", "-n", "4")
    assert r.returncode != 0 and "vocabulary" in r.stderr, r.stderr


def test_bench_reports_draft_acceptance(drafts, tmp_path):
    out = tmp_path / "b.json"
    r = edgellm("bench", "-m", str(STORIES), "--model-draft", str(drafts["q4_0"]), "--runs", "2", "-n", "48",
                "--temp", "0", "-t", "2", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "draft accepted %" in r.stdout
    rep = json.loads(out.read_text())
    samples = [s for s in rep["samples"] if not s["error"]]
    assert samples and all(0 <= s["draft_acceptance"] <= 1 for s in samples)
