"""Automatic prefix caching in `edgellm serve` on a real model (SmolLM2-135M-Instruct): two chat
requests that share a long system prompt, the second of which reuses the first's KV blocks. The
reuse shows in OpenAI's usage.prompt_tokens_details.cached_tokens, Ollama's prompt_eval_count
(the evaluated tokens only, as Ollama and llama-server report it) and /metrics, and the greedy
answer equals the one a server with --no-prefix-cache gives."""
import os
from pathlib import Path

import pytest

import real_models
from net_util import Server

requests = pytest.importorskip("requests", reason="requests is a test dependency")

BIN = os.environ.get("EDGELLM_BIN")
pytestmark = pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)")

SYSTEM = ("You are a careful assistant for a small bakery. The bakery opens at seven in the morning and closes at "
          "six in the evening, every day except Monday. It sells sourdough bread, rye bread, croissants, apple pie "
          "and cinnamon rolls. Orders for cakes must be placed two days in advance. Answer in one short sentence.")
QUESTIONS = ["When does the bakery open?", "Which breads does the bakery sell?"]
BLOCK = 16  # positions per KV block (model::k_kv_block_size): reuse is whole blocks
MODEL_NAME = "smollm2"


def chat(server, question, n=24):
    r = requests.post(server.url + "/v1/chat/completions", timeout=120, json={
        "model": MODEL_NAME, "temperature": 0, "max_tokens": n,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["choices"][0]["message"]["content"], body["usage"]


@pytest.fixture(scope="module")
def model():
    return real_models.require("smollm2")


def test_second_request_reuses_the_shared_prefix_with_the_same_answer(model):
    cached = Server(model, "--alias", MODEL_NAME, "--parallel", "2", "-c", "2048")
    try:
        text0, usage0 = chat(cached, QUESTIONS[0])
        assert usage0["prompt_tokens_details"]["cached_tokens"] == 0, usage0
        text1, usage1 = chat(cached, QUESTIONS[1])
        hit = usage1["prompt_tokens_details"]["cached_tokens"]
        # The system prompt is far longer than a block; the questions differ after it.
        assert hit >= 3 * BLOCK and hit % BLOCK == 0, usage1
        assert hit < usage1["prompt_tokens"]
        m = cached.wait_idle()
        assert m["edgellm_prefix_cache_hit_tokens_total"] == hit
        assert m["edgellm_prefix_cache_hit_blocks_total"] == hit // BLOCK
        assert m["edgellm_kv_blocks_cached"] >= hit // BLOCK
        assert m["edgellm_kv_blocks_used"] == 0
        # Ollama's /api/chat for the same conversation: every full block of the prompt is cached
        # now, so only the rest is evaluated, and prompt_eval_count says so.
        r = requests.post(cached.url + "/api/chat", timeout=120, json={
            "model": MODEL_NAME, "stream": False, "options": {"temperature": 0, "num_predict": 24},
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[1]}]})
        assert r.status_code == 200, r.text
        assert r.json()["message"]["content"] == text1
        n_prompt = usage1["prompt_tokens"]
        assert r.json()["prompt_eval_count"] == n_prompt - min(n_prompt // BLOCK * BLOCK, n_prompt - 1), r.json()
    finally:
        cached.stop()

    plain = Server(model, "--alias", MODEL_NAME, "--parallel", "2", "-c", "2048", "--no-prefix-cache")
    try:
        ref0, u0 = chat(plain, QUESTIONS[0])
        ref1, u1 = chat(plain, QUESTIONS[1])
        assert u1["prompt_tokens_details"]["cached_tokens"] == 0
        assert u1["prompt_tokens"] == usage1["prompt_tokens"]
        assert plain.wait_idle()["edgellm_prefix_cache_hit_tokens_total"] == 0
    finally:
        plain.stop()
    assert text0 == ref0
    assert text1 == ref1, "the cached prefix changed the greedy answer"
