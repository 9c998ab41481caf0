"""`edgellm serve` against real clients: the official `openai` and `ollama` Python packages and
the seed's own `requests.post(.../api/generate)` snippet, on stories260K (a real trained model)
and a synthetic model. Greedy text from the server equals `edgellm run` text for the same
prompt, also when 8 streams run at once (continuous batching must not change the output). Bad
requests get 4xx JSON errors and the server stays healthy; a client that disconnects mid-stream
gets its sequence cancelled and its KV blocks freed (checked through /metrics); a full queue
answers 503; an API key is enforced."""
import concurrent.futures as cf
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from net_util import Server

openai = pytest.importorskip("openai", reason="the openai client is a test dependency (pip install openai)")
ollama = pytest.importorskip("ollama", reason="the ollama client is a test dependency (pip install ollama)")
requests = pytest.importorskip("requests", reason="requests is a test dependency")

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"

pytestmark = [
    pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} is missing (the shared/ folder is not beside the project)"),
]

PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went", "One day, a cat", "The sun was",
           "Tim had a big", "There was a", "Mom said"]


def edgellm(*args, timeout=300):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def run_text(model, prompt, n):
    r = edgellm("run", "-m", str(model), "-p", prompt, "-n", str(n), "--temp", "0", "-t", "2", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["text"]



@pytest.fixture(scope="module")
def stories():
    s = Server(STORIES, "--parallel", "8")
    yield s
    s.stop()


def make_synth(tmp_path_factory, shape):
    path = tmp_path_factory.mktemp("synth") / f"{shape}.gguf"
    r = edgellm("synth", "--shape", shape, "--type", "q4_0", "-q", "-o", str(path))
    assert r.returncode == 0, r.stderr
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synth(tmp_path_factory, "tiny")


def test_seed_requests_snippet_works_unchanged(stories):
    # The seed's lab code, as written (only the host/port differ).
    import requests as rq
    response = rq.post(f"{stories.url}/api/generate",
                       json={"model": "stories260K", "prompt": "Once upon a time", "stream": False})
    assert response.status_code == 200
    body = response.json()
    assert body["done"] is True and body["response"]
    assert body["prompt_eval_count"] > 0 and body["eval_count"] > 0
    assert body["eval_duration"] > 0 and body["prompt_eval_duration"] > 0 and body["total_duration"] > 0


def test_openai_completion_greedy_equals_run(stories):
    client = openai.OpenAI(base_url=stories.url + "/v1", api_key="unused")
    r = client.completions.create(model="stories260K", prompt=PROMPTS[0], max_tokens=48, temperature=0)
    assert r.choices[0].text == run_text(STORIES, PROMPTS[0], 48)
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.completion_tokens == 48 or r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0


def test_openai_streaming_completion_and_usage(stories):
    client = openai.OpenAI(base_url=stories.url + "/v1", api_key="unused")
    chunks = list(client.completions.create(model="stories260K", prompt=PROMPTS[1], max_tokens=32, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == run_text(STORIES, PROMPTS[1], 32)
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens == 32 and usage[-1].prompt_tokens > 0


def test_openai_chat_streaming_equals_non_streaming(stories):
    client = openai.OpenAI(base_url=stories.url + "/v1", api_key="unused")
    msgs = [{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "A cat"}]
    full = client.chat.completions.create(model="stories260K", messages=msgs, max_tokens=24, temperature=0)
    assert full.choices[0].message.role == "assistant"
    parts, usage = [], None
    for c in client.chat.completions.create(model="stories260K", messages=msgs, max_tokens=24, temperature=0,
                                            stream=True, stream_options={"include_usage": True}):
        if c.choices:
            parts.append(c.choices[0].delta.content or "")
        if c.usage:
            usage = c.usage
    assert "".join(parts) == full.choices[0].message.content
    assert usage.completion_tokens == full.usage.completion_tokens
    assert usage.prompt_tokens == full.usage.prompt_tokens
    models = client.models.list()
    assert [m.id for m in models.data] == ["stories260K"]


def test_ollama_client_generate_chat_and_stream(stories):
    client = ollama.Client(host=stories.url)
    opts = {"temperature": 0, "num_predict": 40}
    g = client.generate(model="stories260K", prompt=PROMPTS[2], options=opts)
    assert g.response == run_text(STORIES, PROMPTS[2], 40)
    assert g.eval_count == 40 and g.prompt_eval_count > 0 and g.done
    streamed = "".join(p.response for p in client.generate(model="stories260K", prompt=PROMPTS[2], options=opts,
                                                           stream=True))
    assert streamed == g.response
    c = client.chat(model="stories260K", messages=[{"role": "user", "content": "Hello"}], options=opts)
    assert c.message.role == "assistant" and c.message.content
    cs = "".join(p.message.content for p in client.chat(model="stories260K",
                                                        messages=[{"role": "user", "content": "Hello"}],
                                                        options=opts, stream=True))
    assert cs == c.message.content
    names = [m.model for m in client.list().models]
    assert names == ["stories260K:latest"]
    assert client.ps().models[0].size_vram == 0
    show = client.show("stories260K")
    assert show.details.format == "gguf" and show.details.family == "llama"
    assert show.modelinfo["general.architecture"] == "llama"


def test_stop_strings(stories):
    client = openai.OpenAI(base_url=stories.url + "/v1", api_key="unused")
    full = run_text(STORIES, PROMPTS[0], 48)
    stop = full[10:14]
    r = client.completions.create(model="stories260K", prompt=PROMPTS[0], max_tokens=48, temperature=0, stop=[stop])
    assert r.choices[0].text == full[:full.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_eight_concurrent_streams_each_equal_single_stream_greedy(stories):
    client = openai.OpenAI(base_url=stories.url + "/v1", api_key="unused")
    want = [run_text(STORIES, p, 40) for p in PROMPTS]

    def one(p):
        s = client.completions.create(model="stories260K", prompt=p, max_tokens=40, temperature=0, stream=True)
        return "".join(c.choices[0].text for c in s if c.choices)

    with cf.ThreadPoolExecutor(len(PROMPTS)) as ex:
        got = list(ex.map(one, PROMPTS))
    assert got == want
    m = stories.wait_idle()
    assert m["edgellm_kv_blocks_used"] == 0
    # stories260K has no sliding window: one pool of 5 layers, K and V rows of 32 F16 per position.
    assert m["edgellm_kv_cache_bytes"] == m["edgellm_kv_blocks_total"] * 16 * 5 * 2 * 32 * 2


def test_synth_model_greedy_equals_run(synth):
    s = Server(synth, "--parallel", "4", "-c", "512")
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
        want = run_text(synth, "hello world", 24)

        def one(_):
            return client.completions.create(model="tiny", prompt="hello world", max_tokens=24, temperature=0).choices[0].text

        with cf.ThreadPoolExecutor(4) as ex:
            got = list(ex.map(one, range(4)))
        assert got == [want] * 4
    finally:
        s.stop()


def test_bad_requests_are_clear_4xx_and_the_server_stays_healthy(stories):
    u = stories.url
    cases = [
        ("/api/generate", "{not json", 400, "malformed JSON"),
        ("/api/generate", "[1, 2]", 400, "JSON object"),
        ("/api/generate", json.dumps({"model": "no-such-model", "prompt": "x"}), 404, "no-such-model"),
        ("/api/generate", json.dumps({"model": "stories260K", "prompt": "x", "options": {"temperature": "hot"}}), 400,
         "'temperature' must be a number"),
        ("/api/generate", json.dumps({"model": "stories260K", "prompt": "x", "stream": "yes"}), 400, "'stream'"),
        ("/api/chat", json.dumps({"model": "stories260K", "messages": "hi"}), 400, "'messages'"),
        ("/api/chat", json.dumps({"model": "stories260K", "messages": []}), 400, "empty"),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": -3}), 400,
         "'max_tokens' must be positive"),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 17}), 400,
         "'n' must be between 1 and 16"),
        ("/v1/completions", json.dumps({"model": "gpt-4", "prompt": "x"}), 404, "gpt-4"),
        ("/v1/completions", json.dumps({"prompt": 5}), 400, "'prompt'"),
        ("/v1/completions", json.dumps({"prompt": "x", "top_k": 1.5}), 400, "'top_k' must be an integer"),
        ("/v1/completions", json.dumps({"prompt": "x" * 40000}), 400, "context"),
    ]
    for path, body, status, needle in cases:
        r = requests.post(u + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == status, (path, body[:80], r.status_code, r.text)
        err = r.json()["error"]
        msg = err["message"] if isinstance(err, dict) else err
        assert needle in msg, (path, msg)
    assert requests.get(u + "/no/such/route").status_code == 404
    assert requests.get(u + "/health").json() == {"status": "ok"}
    m = stories.wait_idle()
    assert m["edgellm_kv_blocks_used"] == 0


def test_disconnect_mid_stream_cancels_and_frees_blocks(synth):
    s = Server(synth, "--parallel", "2", "-c", "512")
    try:
        before = s.metrics()
        with requests.post(s.url + "/api/generate", stream=True, timeout=30,
                           json={"model": "tiny", "prompt": "hello", "options": {"num_predict": 400, "temperature": 0}}) as r:
            lines = r.iter_lines()
            first = json.loads(next(lines))
            assert first["done"] is False
        # The connection is closed now; the server notices on its next write.
        deadline = time.time() + 20
        while time.time() < deadline:
            m = s.metrics()
            if m["edgellm_requests_cancelled_total"] > before["edgellm_requests_cancelled_total"]:
                break
            time.sleep(0.05)
        m = s.wait_idle()
        assert m["edgellm_requests_cancelled_total"] == before["edgellm_requests_cancelled_total"] + 1
        assert m["edgellm_generated_tokens_total"] < 400, "the sequence ran to the end instead of being cancelled"
        assert m["edgellm_kv_blocks_used"] == 0
    finally:
        s.stop()


@pytest.fixture(scope="module")
def synth_small(tmp_path_factory):
    # SmolLM-135M-sized: slow enough on one thread that a request is still running while the
    # test fills the queue.
    return make_synth(tmp_path_factory, "small")


def test_full_queue_answers_503(synth_small):
    s = Server(synth_small, "--parallel", "1", "--max-queue", "1", "-c", "2048", "-t", "1")
    try:
        body = {"model": "small", "prompt": "hello", "options": {"num_predict": 2000, "temperature": 0}}
        with requests.post(s.url + "/api/generate", json=body, stream=True, timeout=30) as running:
            # Keep the line iterator: a dropped one closes the connection (urllib3), which
            # cancels the running request and lets the waiting one in.
            running_lines = running.iter_lines()
            next(running_lines)  # running now
            with requests.post(s.url + "/api/generate", json=body, stream=True, timeout=30) as waiting:
                deadline = time.time() + 10
                while s.metrics()["edgellm_queue_depth"] < 1 and time.time() < deadline:
                    time.sleep(0.02)
                r = requests.post(s.url + "/api/generate", json=body, timeout=30)
                assert r.status_code == 503, r.text
                assert "busy" in r.json()["error"]
                r = requests.post(s.url + "/v1/completions", json={"prompt": "hello"}, timeout=30)
                assert r.status_code == 503 and r.json()["error"]["type"] == "server_busy"
        m = s.wait_idle()
        assert m["edgellm_kv_blocks_used"] == 0 and m["edgellm_requests_rejected_total"] == 2
    finally:
        s.stop()


def test_disconnect_of_a_blocking_request_cancels_it(synth_small):
    # A non-streaming request that runs past the server's blocking wait is answered with
    # keep-alive spaces; a client that gives up is noticed on the next one and cancelled.
    s = Server(synth_small, "--parallel", "1", "-c", "2048", "-t", "1")
    try:
        before = s.metrics()
        for path, body in [("/api/generate", {"model": "small", "prompt": "hello", "stream": False,
                                              "options": {"num_predict": 2000, "temperature": 0}}),
                           ("/v1/completions", {"model": "small", "prompt": "hello", "max_tokens": 2000})]:
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.post(s.url + path, json=body, timeout=(5, 0.3))
        deadline = time.time() + 30
        while time.time() < deadline:
            if s.metrics()["edgellm_requests_cancelled_total"] >= before["edgellm_requests_cancelled_total"] + 2:
                break
            time.sleep(0.1)
        m = s.wait_idle()
        assert m["edgellm_requests_cancelled_total"] == before["edgellm_requests_cancelled_total"] + 2
        assert m["edgellm_generated_tokens_total"] < 2000, "a request ran to its end after its client left"
        assert m["edgellm_kv_blocks_used"] == 0
        # A blocking request that outlives the wait still gets one well-formed JSON body.
        r = requests.post(s.url + "/api/generate", timeout=120, json={
            "model": "small", "prompt": "hello", "stream": False, "options": {"num_predict": 60, "temperature": 0}})
        assert r.status_code == 200 and r.json()["done"] is True and r.json()["eval_count"] == 60
    finally:
        s.stop()


def test_api_key(synth):
    s = Server(synth, "--api-key", "sekrit")
    try:
        assert requests.get(s.url + "/health").status_code == 200
        r = requests.get(s.url + "/v1/models")
        assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="sekrit")
        assert client.models.list().data[0].id == "tiny"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.url + "/v1", api_key="wrong").models.list()
    finally:
        s.stop()


def test_serve_rejects_a_port_in_use(synth):
    s = Server(synth)
    try:
        r = edgellm("serve", "-m", str(synth), "--port", str(s.port), timeout=60)
        assert r.returncode != 0 and "cannot listen" in r.stderr
    finally:
        s.stop()


def test_bench_drives_our_server_through_openai_and_ollama_backends(stories, tmp_path):
    r = edgellm("bench", "--backends", "openai", "--url", stories.url + "/v1", "-m", "stories260K",
                "--concurrency", "1,2,4", "--runs", "1", "-n", "16", "-q", "--json", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "c.json").read_text())
    points = doc["sweeps"]
    assert [p["n_parallel"] for p in points] == [1, 2, 4]
    assert all(p["backend"] == "openai" and p["error"] == "" and p["n_gen_tokens"] > 0 for p in points), points
    r = subprocess.run([BIN, "bench", "--backends", "ollama", "-m", "stories260K", "--runs", "1", "-n", "16", "-q",
                        "--json", str(tmp_path / "o.json")], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OLLAMA_HOST": stories.url})
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "o.json").read_text())
    samples = doc["samples"]
    assert samples and all(s["backend"] == "ollama" and s["error"] == "" and s["n_gen_tokens"] > 0 for s in samples), samples


def test_speculative_server_equals_plain_greedy(tmp_path):
    # --model-draft: a Q4_0 copy of stories260K drafts for every decoding sequence inside the
    # batched loop (--parallel 4); each row is sampled as plain decoding would, so greedy text is
    # exactly `run`'s, for concurrent streaming and blocking requests alike.
    draft = tmp_path / "stories-q4_0.gguf"
    q = edgellm("quantize", str(STORIES), str(draft), "q4_0", "-q")
    assert q.returncode == 0, q.stderr
    s = Server(STORIES, "--model-draft", str(draft), "--draft-max", "6", "--parallel", "4")
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
        prompts = PROMPTS[:4]
        want = [run_text(STORIES, p, 40) for p in prompts]

        def one(i):
            if i % 2:
                return client.completions.create(model="stories260K", prompt=prompts[i], max_tokens=40,
                                                 temperature=0).choices[0].text
            st = client.completions.create(model="stories260K", prompt=prompts[i], max_tokens=40, temperature=0,
                                           stream=True)
            return "".join(c.choices[0].text for c in st if c.choices)

        with cf.ThreadPoolExecutor(len(prompts)) as ex:
            got = list(ex.map(one, range(len(prompts))))
        assert got == want
        m = s.wait_idle()
        assert m["edgellm_requests_finished_total"] == len(prompts)
        assert 0 < m["edgellm_draft_accepted_total"] <= m["edgellm_draft_tokens_total"]
        # Penalties work with drafts (each row is sampled by the sequence's own chain).
        pen = requests.post(s.url + "/v1/completions", json={"prompt": "Once", "max_tokens": 8, "temperature": 0,
                                                             "frequency_penalty": 0.5}, timeout=30)
        assert pen.status_code == 200, pen.text
    finally:
        s.stop()
