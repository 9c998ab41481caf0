# The embeddings routes of `edgellm serve` with the real `openai` and `ollama` clients: an encoder
# (all-MiniLM-L6-v2 converted by `edgellm convert`) served alone answers /api/embed,
# /api/embeddings and /v1/embeddings with the vectors `edgellm embed` prints, refuses generation
# with a clear 400, and rejects bad requests with 400s naming the field; a decoder (stories260K)
# serves embeddings beside generation.
import base64
import json
import os
import subprocess

import numpy as np
import pytest

import real_models
from net_util import Server

openai = pytest.importorskip("openai", reason="the openai client is a test dependency (pip install openai)")
ollama = pytest.importorskip("ollama", reason="the ollama client is a test dependency (pip install ollama)")
requests = pytest.importorskip("requests", reason="requests is a test dependency")

STORIES = os.path.join(os.environ.get("EDGELLM_SHARED", "../../../shared"), "models", "stories260K.gguf")
TEXTS = ["A man is eating food.", "The stock market fell sharply today, and analysts were surprised."]


def _cli():
    path = os.environ.get("EDGELLM_BIN")
    if not path or not os.path.exists(path):
        pytest.skip("EDGELLM_BIN not set or not built (run through ctest)")
    return path


def _embed_cli(model, texts, *extra):
    args = [_cli(), "embed", "-m", str(model), "--json", "-t", "2", *extra]
    for t in texts:
        args += ["-p", t]
    return [d["embedding"] for d in json.loads(subprocess.check_output(args, timeout=300))["data"]]


@pytest.fixture(scope="module")
def minilm_gguf(tmp_path_factory):
    folder = real_models.require("minilm")
    out = tmp_path_factory.mktemp("minilm") / "minilm.gguf"
    subprocess.run([_cli(), "convert", str(folder), str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def encoder_server(minilm_gguf):
    s = Server(minilm_gguf)
    yield s
    s.close()


def test_openai_client_embeddings_float_and_base64(encoder_server, minilm_gguf):
    want = _embed_cli(minilm_gguf, TEXTS)
    client = openai.OpenAI(base_url=encoder_server.url + "/v1", api_key="unused")
    # The client asks for base64 unless told otherwise, and decodes it itself.
    r = client.embeddings.create(model="minilm", input=TEXTS)
    assert [d.index for d in r.data] == [0, 1]
    for d, w in zip(r.data, want):
        np.testing.assert_allclose(d.embedding, w, rtol=1e-5, atol=1e-6)
    assert r.usage.prompt_tokens == r.usage.total_tokens > 0
    r = client.embeddings.create(model="minilm", input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(r.data[0].embedding, want[0], rtol=1e-5, atol=1e-6)
    # Token ids: [CLS] a man is eating food . [SEP] as ids give the same vector as the text.
    ids = [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]
    r = client.embeddings.create(model="minilm", input=[ids], encoding_format="float")
    np.testing.assert_allclose(r.data[0].embedding, want[0], rtol=1e-5, atol=1e-6)
    raw = requests.post(encoder_server.url + "/v1/embeddings",
                        json={"input": "hi", "encoding_format": "base64"}).json()
    v = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4


def test_ollama_client_embed_and_legacy_embeddings(encoder_server, minilm_gguf):
    want = _embed_cli(minilm_gguf, TEXTS)
    client = ollama.Client(host=encoder_server.url)
    r = client.embed(model="minilm", input=TEXTS)
    assert len(r.embeddings) == 2
    for got, w in zip(r.embeddings, want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    assert r.prompt_eval_count > 0
    r = client.embed(model="minilm", input=TEXTS[0])
    np.testing.assert_allclose(r.embeddings[0], want[0], rtol=1e-5, atol=1e-6)
    legacy = client.embeddings(model="minilm", prompt=TEXTS[0])  # unnormalised, as Ollama's
    raw = _embed_cli(minilm_gguf, TEXTS[:1], "--no-normalize")[0]
    np.testing.assert_allclose(legacy.embedding, raw, rtol=1e-5, atol=1e-6)


def test_encoder_refuses_generation_and_bad_requests(encoder_server):
    url = encoder_server.url
    for path, body in (("/api/generate", {"model": "minilm", "prompt": "hi", "stream": False}),
                       ("/api/chat", {"model": "minilm", "messages": [{"role": "user", "content": "hi"}],
                                      "stream": False}),
                       ("/v1/chat/completions", {"model": "minilm", "messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/completions", {"model": "minilm", "prompt": "hi"})):
        r = requests.post(url + path, json=body)
        assert r.status_code == 400, (path, r.text)
        assert "embedding model" in r.text, (path, r.text)
    bad = [
        ("/v1/embeddings", {"input": "hi", "dimensions": 128}, "dimensions"),
        ("/v1/embeddings", {"input": "hi", "encoding_format": "int8"}, "encoding_format"),
        ("/v1/embeddings", {"input": [[101, 999999]]}, "outside the vocabulary"),
        ("/v1/embeddings", {"input": []}, "input"),
        ("/v1/embeddings", {"model": "minilm"}, "input"),
        ("/api/embed", {"model": "minilm", "input": 5}, "input"),
        ("/api/embed", {"model": "minilm", "input": "word " * 600, "truncate": False}, "truncation is off"),
        ("/api/embeddings", {"model": "minilm"}, "prompt"),
    ]
    for path, body, needle in bad:
        r = requests.post(url + path, json=body)
        assert r.status_code == 400, (path, body, r.text)
        assert needle in r.text, (path, r.text)
    r = requests.post(url + "/api/embed", json={"model": "other", "input": "hi"})
    assert r.status_code == 404
    # truncate (the default) cuts a long input to the model's 512 positions instead.
    r = requests.post(url + "/api/embed", json={"model": "minilm", "input": "word " * 600})
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 512
    assert requests.get(url + "/health").status_code == 200
    assert "edgellm_http_requests_total" in requests.get(url + "/metrics").text


def test_decoder_server_embeds_beside_generation():
    if not os.path.exists(STORIES):
        pytest.skip(f"{STORIES} is missing")
    want = _embed_cli(STORIES, TEXTS)
    s = Server(STORIES, "--parallel", "2")
    try:
        with openai.OpenAI(base_url=s.url + "/v1", api_key="unused") as client:
            r = client.embeddings.create(model="stories260K", input=TEXTS, encoding_format="float")
        for d, w in zip(r.data, want):
            np.testing.assert_allclose(d.embedding, w, rtol=1e-4, atol=1e-5)
        # Connection: close, so stopping the server does not wait out an idle keep-alive connection.
        g = requests.post(s.url + "/api/generate", json={"model": "stories260K", "prompt": "Once", "stream": False,
                                                         "options": {"num_predict": 4}},
                          headers={"Connection": "close"})
        assert g.status_code == 200 and g.json()["done"]
    finally:
        s.close()
