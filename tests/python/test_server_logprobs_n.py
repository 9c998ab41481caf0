"""OpenAI `logprobs` and `n` on stories260K (the `openai` client):
- /v1/completions `logprobs: 5` at temperature 0: the tokens are the ids `edgellm run --json`
  generates, each token's logprob and the top-5 (order and values) equal the log-softmax of the
  engine's logits for that prefix (tests/tools/engine_logits, KV in f32 on both sides);
- /v1/chat/completions `logprobs` + `top_logprobs`: the chosen token's logprob is among or
  below its alternatives, streamed records equal the unstreamed ones for the same seed;
- `n=3`: three choices indexed 0..2, choice i equal to a single request with seed + i, streamed
  chunks tagged by index reassembling to the same texts; bad values -> 400;
- a JSON-schema reply cut by max_tokens ends with "length", never "stop" (and one that
  completes on its last allowed token with "stop")."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from net_util import Server

openai = pytest.importorskip("openai", reason="the openai client is a test dependency (pip install openai)")
requests = pytest.importorskip("requests", reason="requests is a test dependency")

BIN = os.environ.get("EDGELLM_BIN")
LOGITS = os.environ.get("EDGELLM_TOOL_engine_logits")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"
PROMPT = "Once upon a time"

pytestmark = [
    pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} is missing"),
]


@pytest.fixture(scope="module")
def server():
    s = Server(STORIES, "--kv-type", "f32", "--parallel", "4")
    yield s
    s.close()


def client_of(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none")


def run_json(*args):
    out = subprocess.run([BIN, "run", "-m", str(STORIES), *args, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


@pytest.mark.skipif(not LOGITS, reason="EDGELLM_TOOL_engine_logits (tests/tools/engine_logits.cpp) is not built")
def test_completion_logprobs_equal_log_softmax_of_the_engines_logits(server, tmp_path):
    n = 12
    ran = run_json("-p", PROMPT, "-n", str(n), "--temp", "0", "--kv-type", "f32", "--ignore-eos")
    gen = ran["tokens"]
    ids = subprocess.run([BIN, "tokenize", "-m", str(STORIES), "-p", PROMPT, "--ids"], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    prompt = [int(t) for t in ids]
    out = tmp_path / "logits.f32"
    subprocess.run([LOGITS, str(STORIES), " ".join(map(str, prompt + gen)), str(out), "1"], check=True, timeout=60)
    logits = np.fromfile(out, dtype="<f4").reshape(len(prompt) + len(gen), -1)

    r = client_of(server).completions.create(model="stories260K", prompt=PROMPT, max_tokens=len(gen), temperature=0,
                                             logprobs=5)
    c = r.choices[0]
    assert c.text == ran["text"]
    lp = c.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(gen)
    assert "".join(lp.tokens) == c.text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(gen))]
    for i, tok in enumerate(gen):
        ref = log_softmax(logits[len(prompt) - 1 + i])
        assert lp.token_logprobs[i] == pytest.approx(ref[tok], abs=2e-3), i
        top_ids = np.argsort(-ref, kind="stable")[:5]
        got = list(lp.top_logprobs[i].values())
        assert got == sorted(got, reverse=True)  # most likely first
        np.testing.assert_allclose(got, ref[top_ids][:len(got)], atol=2e-3)
        assert lp.token_logprobs[i] == pytest.approx(got[0], abs=1e-6)  # greedy: the chosen one is the top one
        assert np.exp(got).sum() <= 1 + 1e-4


def test_chat_logprobs_streamed_equal_unstreamed(server):
    client = client_of(server)
    kw = dict(model="stories260K", messages=[{"role": "user", "content": "Tell a story"}], max_tokens=10,
              temperature=1.0, seed=42, logprobs=True, top_logprobs=3)
    whole = client.chat.completions.create(**kw).choices[0]
    content = whole.logprobs.content
    assert len(content) == 10 and whole.finish_reason == "length"
    assert "".join(e.token for e in content) == whole.message.content
    for e in content:
        assert len(e.top_logprobs) == 3
        tops = [t.logprob for t in e.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert e.logprob <= tops[0] + 1e-6
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
    streamed = []
    for chunk in client.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            if ch.logprobs and ch.logprobs.content:
                streamed += ch.logprobs.content
    assert [(e.token, round(e.logprob, 5)) for e in streamed] == [(e.token, round(e.logprob, 5)) for e in content]
    plain = client.chat.completions.create(model="stories260K", messages=kw["messages"], max_tokens=2)
    assert plain.choices[0].logprobs is None


def test_n_choices_use_seed_plus_index_and_stream_by_index(server):
    client = client_of(server)
    kw = dict(model="stories260K", prompt="The dog", max_tokens=12, temperature=1.0)
    r = client.completions.create(n=3, seed=1000, **kw)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    texts = {c.index: c.text for c in r.choices}
    for i in range(3):
        assert client.completions.create(seed=1000 + i, **kw).choices[0].text == texts[i]
    assert r.usage.completion_tokens == sum(len(client.completions.create(seed=1000 + i, logprobs=0, **kw)
                                                .choices[0].logprobs.tokens) for i in range(3))
    streamed, finish = {}, {}
    for chunk in client.completions.create(n=3, seed=1000, stream=True, **kw):
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + c.text
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    assert streamed == texts and set(finish) == {0, 1, 2}

    # The choices share the prompt's KV: the second and third reuse its full blocks (prefix cache).
    long_kw = dict(kw, prompt="The dog ran to the park to play with the ball and the cat and the bird and the boy")
    before = server.metrics()["edgellm_prefix_cache_hit_tokens_total"]
    r = client.completions.create(n=3, seed=1000, **long_kw)
    assert r.usage.prompt_tokens > 16
    assert server.metrics()["edgellm_prefix_cache_hit_tokens_total"] - before >= 2 * 16 * ((r.usage.prompt_tokens - 1) // 16)
    assert [c.text for c in sorted(r.choices, key=lambda c: c.index)] == [
        client.completions.create(seed=1000 + i, **long_kw).choices[0].text for i in range(3)]

    chat = client.chat.completions.create(model="stories260K", messages=[{"role": "user", "content": "Hi"}], n=3,
                                          max_tokens=8, temperature=1.0, seed=7)
    assert [c.index for c in chat.choices] == [0, 1, 2]
    chunks = {}
    for chunk in client.chat.completions.create(model="stories260K", messages=[{"role": "user", "content": "Hi"}],
                                                n=3, max_tokens=8, temperature=1.0, seed=7, stream=True):
        for c in chunk.choices:
            chunks[c.index] = chunks.get(c.index, "") + (c.delta.content or "")
    assert chunks == {c.index: c.message.content for c in chat.choices}


def test_bad_logprobs_and_n_are_400(server):
    cases = [("/v1/chat/completions", {"n": 0}, "'n'"), ("/v1/chat/completions", {"n": 99}, "'n'"),
             ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
             ("/v1/chat/completions", {"top_logprobs": 2}, "needs 'logprobs'"),
             ("/v1/chat/completions", {"logprobs": 3}, "'logprobs' must be true or false"),
             ("/v1/completions", {"logprobs": -1}, "'logprobs'"), ("/v1/completions", {"logprobs": True}, "'logprobs'")]
    for route, extra, needle in cases:
        body = {"max_tokens": 2, **extra}
        if "chat" in route:
            body["messages"] = [{"role": "user", "content": "x"}]
        else:
            body["prompt"] = "x"
        r = requests.post(server.url + route, json=body, timeout=30)
        assert r.status_code == 400, (extra, r.text)
        assert needle in r.json()["error"]["message"], (needle, r.text)


def test_grammar_reply_cut_by_max_tokens_is_length_never_stop(server):
    """A JSON reply that completes on its last allowed token is "stop" (the grammar's end is
    checked before the token limit); one token fewer is "length", and that text is not JSON."""
    client = client_of(server)
    schema = {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]},
                                               "n": {"type": "integer"}}, "required": ["colour", "n"]}
    kw = dict(model="stories260K", prompt="Colour:", temperature=1.0, seed=9,
              extra_body={"response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}})
    full = client.completions.create(max_tokens=64, **kw).choices[0]
    assert full.finish_reason == "stop", full
    doc = json.loads(full.text)
    assert doc["colour"] in ("red", "green", "blue")
    k = len(client.completions.create(max_tokens=64, logprobs=0, **kw).choices[0].logprobs.tokens)
    exact = client.completions.create(max_tokens=k, **kw).choices[0]
    assert (exact.finish_reason, exact.text) == ("stop", full.text)
    cut = client.completions.create(max_tokens=k - 1, **kw).choices[0]
    assert cut.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.text)
