"""N-gram (prompt lookup) speculative decoding inside the scheduler (`--spec-ngram N`): drafts
are verified in the same batched forward pass as every other sequence, so `serve --spec-ngram`
works with any --parallel. On stories260K, greedy text with drafts equals plain `edgellm run`
text at --parallel 1 and 4 (concurrent streaming and blocking requests), drafts are proposed and
some accepted (/metrics), and bad flag combinations are refused with a message.

On larger real models a verification pass (the pending token plus its drafts) runs the matrix
and attention kernels with a different batch shape than a single-token decode step, so a
near-tie can resolve differently (docs/server.md); the fake-runner tests in
tests/unit/speculation_test.cpp check the exact identity of the algorithm."""
import concurrent.futures as cf
import json
import os
import subprocess
from pathlib import Path

import pytest

from net_util import Server

requests = pytest.importorskip("requests", reason="requests is a test dependency")

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"
pytestmark = [
    pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} is missing (the shared/ folder is not beside the project)"),
]
PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went", "One day, a cat"]


def edgellm(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def run_json(prompt, n, *extra):
    r = edgellm("run", "-m", str(STORIES), "-p", prompt, "-n", str(n), "--temp", "0", "-t", "2", "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def plain():
    return [run_json(p, 60)["text"] for p in PROMPTS]


def test_run_with_ngram_drafts_equals_plain_greedy(plain):
    for p, want in zip(PROMPTS[:2], plain[:2]):
        j = run_json(p, 60, "--spec-ngram", "3", "--draft-max", "6")
        assert j["text"] == want
        assert j["spec_ngram"] == 3 and j["n_drafted"] > 0 and 0 <= j["n_accepted"] <= j["n_drafted"]


@pytest.mark.parametrize("parallel", [1, 4])
def test_server_with_ngram_drafts_equals_plain_greedy(plain, parallel):
    s = Server(STORIES, "--parallel", str(parallel), "--spec-ngram", "3", "--draft-max", "6")
    try:
        def one(i):
            body = {"model": "stories260K", "prompt": PROMPTS[i], "max_tokens": 60, "temperature": 0}
            if i % 2:
                r = requests.post(s.url + "/v1/completions", json=body, timeout=60)
                assert r.status_code == 200, r.text
                return r.json()["choices"][0]["text"]
            text = ""
            with requests.post(s.url + "/v1/completions", json={**body, "stream": True}, stream=True, timeout=60) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line.startswith(b"data: ") and line != b"data: [DONE]":
                        text += json.loads(line[6:])["choices"][0]["text"]
            return text

        with cf.ThreadPoolExecutor(len(PROMPTS)) as ex:
            got = list(ex.map(one, range(len(PROMPTS))))
        assert got == plain
        m = s.wait_idle()
        assert 0 < m["edgellm_draft_accepted_total"] <= m["edgellm_draft_tokens_total"]
        assert m["edgellm_kv_blocks_used"] == 0
    finally:
        s.stop()


def test_bad_spec_flags_are_refused():
    r = edgellm("serve", "-m", str(STORIES), "--spec-ngram", "2", "--model-draft", str(STORIES), "--port", "0")
    assert r.returncode != 0 and "not both" in r.stderr
    r = edgellm("run", "-m", str(STORIES), "-p", "Once", "-n", "4", "--spec-ngram", "-1")
    assert r.returncode != 0 and "--spec-ngram must be at least 1" in r.stderr
    r = edgellm("run", "-m", str(STORIES), "-p", "Once", "-n", "4", "--spec-ngram", "2", "--draft-max", "0")
    assert r.returncode != 0 and "--draft-max must be at least 1" in r.stderr
