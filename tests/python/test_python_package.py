"""The edgellm Python package (python/): edgellm.Llama against llama-cpp-python's Llama and
`edgellm run`, the seed's snippet, streaming, stop strings, errors, the GIL, Model/Session."""
import ast
import re
import subprocess
import sys
import threading
import time

import pytest

import real_models
from edgellm_py_util import BIN, SHARED, import_edgellm, python_env, require_stories

edgellm = import_edgellm()

SEED_DOC = SHARED / "seed" / "what-are-llms.md"


def edgellm_run(model, prompt, n, *extra):
    out = subprocess.run([BIN, "run", "-m", str(model), "-p", prompt, "-n", str(n), *extra],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n")
    return out.stdout[:-1]


def llama_cpp_llama(**kw):
    llama_cpp = pytest.importorskip("llama_cpp")
    import conftest  # noqa: F401  (llama.cpp without its extra buffer types, as every oracle test)
    return llama_cpp.Llama(verbose=False, **kw)


@pytest.fixture(scope="module")
def llm():
    return edgellm.Llama(model_path=str(require_stories()), verbose=False)


def seed_snippet():
    text = SEED_DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    snippet = [b for b in blocks if "from llama_cpp import Llama" in b]
    assert snippet, f"no llama-cpp-python snippet in {SEED_DOC}"
    return snippet[0]


def test_seed_snippet_runs_unchanged_but_the_import(tmp_path):
    """The seed's snippet, with only its import line changed, in a folder whose models/mistral.gguf
    is stories260K; its printed dict has llama-cpp-python's shape and n_gpu_layers=100 is
    reported on stderr (once) where no GPU can take layers."""
    model = require_stories()
    code = seed_snippet()
    assert "from llama_cpp import Llama" in code and "models/mistral.gguf" in code
    code = code.replace("from llama_cpp import Llama", "from edgellm import Llama")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mistral.gguf").symlink_to(model)
    (tmp_path / "snippet.py").write_text(code)
    out = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=python_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = ast.literal_eval(out.stdout.strip())
    assert result["object"] == "text_completion"
    assert set(result) == {"id", "object", "created", "model", "choices", "usage"}
    choice = result["choices"][0]
    assert set(choice) == {"text", "index", "logprobs", "finish_reason"}
    assert choice["finish_reason"] in ("stop", "length")
    assert result["usage"]["completion_tokens"] <= 16  # llama-cpp-python's default max_tokens
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    if edgellm._edgellm.gpu_offload_unavailable_reason():
        assert out.stderr.count("n_gpu_layers=100 asked, but no GPU can take layers here") == 1, out.stderr


def test_seed_prompt_greedy_and_seeded_text_equals_edgellm_run():
    model = require_stories()
    llm = edgellm.Llama(model_path=str(model), n_gpu_layers=100, verbose=False)
    if edgellm._edgellm.gpu_offload_unavailable_reason():
        assert llm.n_gpu_layers_offloaded == 0
    prompt = "Explain transformers in 3 sentences."
    greedy = llm(prompt, temperature=0)["choices"][0]["text"]
    assert greedy == edgellm_run(model, prompt, 16, "--temp", "0")
    # Sampling with a seed: the same chain and seed as the CLI's defaults (temp 0.8, top-k 40 ...).
    sampled = llm(prompt, seed=7)["choices"][0]["text"]
    assert sampled == edgellm_run(model, prompt, 16, "--seed", "7")


CHAT = [{"role": "system", "content": "You are a storyteller."},
        {"role": "user", "content": "Tell me a story about a cat."}]


def chat_completion(llm):
    """The same code for llama_cpp.Llama and edgellm.Llama."""
    r = llm.create_chat_completion(messages=CHAT, temperature=0, max_tokens=16)
    return r["choices"][0]["message"], r["choices"][0]["finish_reason"], r["usage"]


def test_chat_completion_matches_llama_cpp_on_stories260k():
    model = str(require_stories())
    ours = edgellm.Llama(model_path=model, chat_format="chatml", verbose=False)
    theirs = llama_cpp_llama(model_path=model, chat_format="chatml", n_ctx=512, logits_all=True)
    assert chat_completion(ours) == chat_completion(theirs)
    # The generated token ids (llama-cpp-python's chat API returns text only: compare the ids
    # through Llama.generate on the same chat prompt, greedy).
    prompt = ("<|im_start|>system\nYou are a storyteller.<|im_end|>\n<|im_start|>user\n"
              "Tell me a story about a cat.<|im_end|>\n<|im_start|>assistant\n").encode()
    ids_ours = ours.tokenize(prompt, add_bos=True, special=True)
    assert ids_ours == theirs.tokenize(prompt, add_bos=True, special=True)
    assert ids_ours == ours.chat_prompt_tokens(CHAT)

    def first(llm, n=24):
        out = []
        for t in llm.generate(ids_ours, temp=0):
            out.append(t)
            if len(out) == n:
                break
        return out

    assert first(ours) == first(theirs)
    # logprobs of a completion: same tokens, same values to float precision.
    a = ours("Once upon a time", max_tokens=4, temperature=0, logprobs=2)["choices"][0]["logprobs"]
    b = theirs("Once upon a time", max_tokens=4, temperature=0, logprobs=2)["choices"][0]["logprobs"]
    assert a["tokens"] == b["tokens"] and a["text_offset"] == b["text_offset"]
    assert a["token_logprobs"] == pytest.approx([float(x) for x in b["token_logprobs"]], abs=2e-3)


def test_chat_completion_matches_llama_cpp_on_smollm2():
    """A real instruct model with its own Jinja2 template (chat_format None in both): the same
    prompt token ids, and the same greedy ids up to the first step where llama.cpp's own top-2
    margin is a near-tie (the rule of test_real_models_llamacpp.py: Q4_1 numerics decide those)."""
    model = str(real_models.require("smollm2"))
    ours = edgellm.Llama(model_path=model, n_ctx=512, n_threads=1, verbose=False)
    theirs = llama_cpp_llama(model_path=model, n_ctx=512, n_threads=1)
    msg_a, finish_a, usage_a = chat_completion(ours)
    msg_b, finish_b, usage_b = chat_completion(theirs)
    assert usage_a["prompt_tokens"] == usage_b["prompt_tokens"]
    prompt = ours.chat_prompt_tokens(CHAT)
    assert len(prompt) == usage_b["prompt_tokens"]
    n = 16
    ids_ours, ids_theirs = [], []
    for llm, out in ((ours, ids_ours), (theirs, ids_theirs)):
        for t in llm.generate(prompt, temp=0):
            out.append(t)
            if len(out) == n or llm.detokenize([t], special=True) == b"<|im_end|>":
                break
    first = next((i for i, (a, b) in enumerate(zip(ids_ours, ids_theirs)) if a != b), None)
    if first is None:
        assert ids_ours == ids_theirs
        assert (msg_a, finish_a, usage_a) == (msg_b, finish_b, usage_b)
        return
    import llama_cpp
    theirs.reset()
    theirs.eval(prompt + ids_theirs[:first])
    last = llama_cpp.llama_get_logits_ith(theirs.ctx, -1)  # scores[] holds rows only with logits_all
    row_t = [float(last[i]) for i in range(theirs.n_vocab())]
    ours._ctx.kv_truncate(0)
    ours._ctx.eval(prompt + ids_theirs[:first])
    row_o = ours._ctx.logits(-1)
    ours._ctx.kv_truncate(0)
    a, b = ids_ours[first], ids_theirs[first]
    gap = (row_o[a] - row_o[b]) + (row_t[b] - row_t[a])  # how far apart the two orderings are
    top = sorted(range(len(row_t)), key=lambda i: row_t[i], reverse=True)[:50]
    err = max(abs(row_o[i] - row_t[i]) for i in top)  # logit error between the engines here
    print(f"diverges at step {first}: ours {a}, llama.cpp {b}; orderings {gap:.4f} apart, logit error {err:.4f}")
    # A flip that the logit error explains (each logit off by at most err moves a gap by 2 err).
    assert first >= 4 and gap <= 2 * err, (first, gap, err, ids_ours, ids_theirs)
    common = theirs.detokenize(ids_theirs[:first]).decode("utf-8", errors="ignore")
    assert msg_a["content"].startswith(common) and msg_b["content"].startswith(common)


def test_streaming_gives_the_same_text(llm):
    full = llm("Once upon a time", max_tokens=32, temperature=0)
    chunks = list(llm("Once upon a time", max_tokens=32, temperature=0, stream=True))
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == full["choices"][0]["text"]
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == full["choices"][0]["finish_reason"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert len(chunks) > 5  # token by token, not one block

    chat = list(llm.create_chat_completion(CHAT, temperature=0, max_tokens=16, stream=True))
    assert chat[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chat[-1]["choices"][0]["delta"] == {} and chat[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chat)
    assert text == llm.create_chat_completion(CHAT, temperature=0, max_tokens=16)["choices"][0]["message"]["content"]

    # Leaving a stream early cancels the generation; the model is usable at once.
    it = llm("Once upon a time", max_tokens=200, temperature=0, stream=True)
    next(it)
    it.close()
    assert llm("Once upon a time", max_tokens=32, temperature=0) ["choices"][0]["text"] == full["choices"][0]["text"]


def test_stop_strings_match_llama_cpp(llm):
    full = llm("Once upon a time", max_tokens=32, temperature=0)["choices"][0]["text"]
    stop = " little"
    assert stop in full
    r = llm("Once upon a time", max_tokens=32, temperature=0, stop=["zzz", stop])
    assert r["choices"][0]["text"] == full[:full.index(stop)]
    assert r["choices"][0]["finish_reason"] == "stop"
    theirs = llama_cpp_llama(model_path=str(require_stories()), n_ctx=512)
    t = theirs("Once upon a time", max_tokens=32, temperature=0, stop=["zzz", stop])
    assert t["choices"][0]["text"] == r["choices"][0]["text"]
    assert t["choices"][0]["finish_reason"] == "stop"
    streamed = "".join(c["choices"][0]["text"] for c in llm("Once upon a time", max_tokens=32, temperature=0,
                                                             stop=stop, stream=True))
    assert streamed == r["choices"][0]["text"]


def test_errors_raise_with_the_c_error_text(tmp_path, llm):
    with pytest.raises(edgellm.Error, match="no such file") as e:
        edgellm.Llama(model_path=str(tmp_path / "missing.gguf"))
    assert e.value.status == "EDGELLM_ERR_IO"
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(require_stories().read_bytes()[:4000])
    with pytest.raises(edgellm.Error) as e:
        edgellm.Llama(model_path=str(cut))
    assert e.value.status == "EDGELLM_ERR_MODEL" and str(e.value)
    with pytest.raises(edgellm.Error, match="top") as e:
        llm("Once upon a time", top_p=5.0)
    assert e.value.status == "EDGELLM_ERR_USAGE"
    with pytest.raises(edgellm.Error, match="context"):
        llm([1] * 600)
    with pytest.raises(edgellm.Error, match="outside the vocabulary"):
        llm.detokenize([10 ** 6])
    with pytest.raises(ValueError, match="chat_format"):
        edgellm.Llama(model_path=str(require_stories()), chat_format="no-such-format")
    # An exception in a streaming consumer's callback path ends the generation and propagates.
    with pytest.raises(edgellm.Error):
        list(llm("Once upon a time", top_k=-5, min_p=7.0, stream=True))


def test_generation_releases_the_gil(llm):
    """A second Python thread keeps running while a generation runs in C."""
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    tokens = llm.tokenize(b"Once upon a time")
    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.01)
        start = time.perf_counter()
        # No Python callback at all: if the GIL were held, the spinning thread could not run.
        res = llm._ctx.generate(tokens, n_predict=400, temperature=0, ignore_eos=True)
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
    assert res["n_gen"] == 400
    during = [x for x in ticks if start < x < end]
    assert len(during) > 100, f"{len(during)} ticks of the other thread during {1000 * (end - start):.1f} ms"


def test_model_session_and_device():
    model = edgellm.Model(str(require_stories()))
    assert model.info["arch"] == "llama" and model.info["n_vocab"] == 512
    s = model.session(n_ctx=256, n_threads=1)
    pieces = list(s.stream("Once upon a time", max_tokens=16, temperature=0))
    assert len(pieces) > 3
    assert "".join(pieces) == edgellm_run(require_stories(), "Once upon a time", 16, "--temp", "0")
    assert s.last_result["n_gen"] == 16
    answer = "".join(s.chat("Hello", max_tokens=8, temperature=0))
    assert s.messages[-1] == {"role": "assistant", "content": answer}
    "".join(s.chat("And then?", max_tokens=8, temperature=0))
    assert s.last_result["n_cached"] > 0  # the second turn reused the first turn's KV
    d = edgellm.device(str(require_stories()))
    assert {"device", "capabilities", "recommended_settings", "model"} <= set(d)


def test_two_sessions_on_one_model_run_in_parallel_threads():
    """A model is shared read-only: two contexts on it generate at once, each as it would alone."""
    model = edgellm.Model(str(require_stories()))
    prompts = ["Once upon a time", "The little dog"]
    alone = [model.session(n_ctx=256, n_threads=1).generate(p, max_tokens=48, temperature=0) for p in prompts]
    sessions = [model.session(n_ctx=256, n_threads=1) for _ in prompts]
    out = [None, None]

    def run(i):
        out[i] = sessions[i].generate(prompts[i], max_tokens=48, temperature=0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == alone and alone[0] != alone[1]


def test_embed_on_an_encoder_and_a_decoder_equals_edgellm_embed(tmp_path):
    """Llama.embed (llama-cpp-python's name) through the C API's edgellm_embed: all-MiniLM-L6-v2
    converted by `edgellm convert`, and stories260K (a decoder: last-token pooling); the vectors
    equal `edgellm embed --json`'s; an encoder refuses to generate with a clear error."""
    import json
    import numpy as np
    gguf = tmp_path / "minilm.gguf"
    subprocess.run([BIN, "convert", str(real_models.require("minilm")), str(gguf), "--outtype", "f32"], check=True,
                   capture_output=True)
    texts = ["A man is playing a guitar.", "Edge devices run small language models."]
    for path in (gguf, require_stories()):
        cli = json.loads(subprocess.run([BIN, "embed", "-m", str(path), "--json", "-t", "2", "-p", texts[0], "-p",
                                         texts[1]], check=True, capture_output=True, text=True).stdout)
        want = [np.asarray(d["embedding"]) for d in cli["data"]] if "data" in cli else None
        llm = edgellm.Llama(model_path=str(path), verbose=False)
        got = llm.embed(texts)
        assert len(got) == 2 and len(got[0]) == llm.n_embd()
        one = llm.embed(texts[0])
        assert np.allclose(one, got[0], atol=1e-5)
        assert abs(np.linalg.norm(got[0]) - 1) < 1e-4
        if want is not None:
            for g, w in zip(got, want):
                assert float(np.dot(g, w) / (np.linalg.norm(g) * np.linalg.norm(w))) > 0.99999
        if path == gguf:
            with pytest.raises(ValueError, match="embedding model"):
                llm("Hello", max_tokens=4)
        llm.close()
