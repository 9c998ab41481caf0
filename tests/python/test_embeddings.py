# BERT-class embeddings end to end on the real all-MiniLM-L6-v2 Hugging Face folder: `edgellm
# convert` writes the GGUF; `edgellm embed` must agree with a numpy forward pass over the
# safetensors weights (cosine >= 0.9999) and with llama.cpp's embeddings of the same GGUF; token
# ids equal the `tokenizers` package's; paraphrases land closer than unrelated sentences; bad
# input gives clear errors and leaves no half-written file.
import json
import os
import subprocess

import numpy as np
import pytest

import real_models
from embed_oracle_util import BertReference, cosine

TEXTS = [
    "A man is eating food.",
    "Hello world",
    "The quick brown fox jumps over the lazy dog, while the café's naïve owner watches!",
    "Embeddings turn sentences into vectors; similar meanings give nearby vectors (usually). 我想在apple工作",
    "x",
]


def _cli():
    path = os.environ.get("EDGELLM_BIN")
    if not path or not os.path.exists(path):
        pytest.skip("EDGELLM_BIN not set or not built (run through ctest)")
    return path


def _run(*args, check=True):
    r = subprocess.run([_cli(), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, f"edgellm {' '.join(map(str, args))} failed:\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def minilm():
    return real_models.require("minilm")


@pytest.fixture(scope="module")
def gguf_f32(minilm, tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "minilm-f32.gguf"
    _run("convert", minilm, out, "--outtype", "f32")
    return out


def _embed(model, texts, *extra):
    args = ["embed", "-m", model, "--json", "-t", "2"]
    for t in texts:
        args += ["-p", t]
    r = _run(*args, *extra)
    return json.loads(r.stdout)


def _tokenizer(minilm):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(minilm / "tokenizer.json"))
    tok.no_padding()  # the folder's tokenizer.json pads to 128 for training batches
    tok.no_truncation()
    return tok


def test_converted_gguf_has_llama_cpp_names_and_metadata(gguf_f32):
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(str(gguf_f32))
    names = {t.name for t in r.tensors}
    for n in ("token_embd.weight", "position_embd.weight", "token_types.weight", "token_embd_norm.weight",
              "token_embd_norm.bias", "blk.0.attn_q.weight", "blk.0.attn_q.bias", "blk.5.attn_output_norm.bias",
              "blk.5.ffn_up.weight", "blk.5.ffn_down.bias", "blk.5.layer_output_norm.weight"):
        assert n in names, n
    assert not any("pooler" in n for n in names)
    field = lambda k: r.fields[k].contents()  # noqa: E731
    assert field("general.architecture") == "bert"
    assert field("bert.block_count") == 6 and field("bert.embedding_length") == 384
    assert field("bert.attention.causal") is False
    assert field("bert.pooling_type") == 1  # mean, from 1_Pooling/config.json
    assert field("tokenizer.ggml.model") == "bert"
    assert field("tokenizer.ggml.cls_token_id") == 101 and field("tokenizer.ggml.seperator_token_id") == 102


def test_token_ids_equal_the_tokenizers_package(minilm, gguf_f32):
    tok = _tokenizer(minilm)
    for text in TEXTS:
        want = tok.encode(text).ids
        got = [int(x) for x in _run("tokenize", "-m", gguf_f32, "-p", text, "--ids").stdout.split()]
        assert got == want, text


def test_embeddings_match_numpy_reference(minilm, gguf_f32):
    tok = _tokenizer(minilm)
    ref = BertReference(minilm)
    out = _embed(gguf_f32, TEXTS)  # one call: inputs of different lengths batched together
    assert out["n_embd"] == 384 and out["pooling"] == "mean"
    cosines = []
    for text, d in zip(TEXTS, out["data"]):
        ids = tok.encode(text).ids
        assert d["n_tokens"] == len(ids)
        want = ref.embed(ids)
        got = np.array(d["embedding"])
        assert abs(np.linalg.norm(got) - 1.0) < 1e-4
        cosines.append(cosine(got, want))
    print("cosine vs numpy reference (f32 GGUF):", ["%.9f" % c for c in cosines])
    assert min(cosines) >= 0.9999, cosines


def test_f16_bf16_and_q8_0_conversions_stay_close(minilm, gguf_f32, tmp_path):
    ref = _embed(gguf_f32, TEXTS[:3])
    for outtype, floor in (("f16", 0.9999), ("bf16", 0.999), ("q8_0", 0.999)):
        out = tmp_path / f"minilm-{outtype}.gguf"
        _run("convert", minilm, out, "--outtype", outtype)
        got = _embed(out, TEXTS[:3])
        cos = [cosine(a["embedding"], b["embedding"]) for a, b in zip(got["data"], ref["data"])]
        print(f"cosine {outtype} vs f32 GGUF:", ["%.6f" % c for c in cos])
        assert min(cos) >= floor, (outtype, cos)


def test_embeddings_match_llama_cpp(gguf_f32):
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(gguf_f32), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                          n_threads=2, verbose=False)
    try:
        want = [llm.embed(t) for t in TEXTS]
    finally:
        llm.close()
    got = _embed(gguf_f32, TEXTS)
    cos = [cosine(d["embedding"], w) for d, w in zip(got["data"], want)]
    print("cosine vs llama.cpp embeddings of the same GGUF:", ["%.9f" % c for c in cos])
    assert min(cos) >= 0.9999, cos


def test_paraphrases_are_closer_than_unrelated_sentences(gguf_f32):
    triples = [
        ("A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."),
        ("How do I reset my password?", "I forgot my login password, how can I change it?",
         "The weather is sunny and warm."),
        ("The cat sits on the mat.", "A kitten is resting on a rug.", "Quantum computers use qubits."),
    ]
    flat = [t for tr in triples for t in tr]
    v = [np.array(d["embedding"]) for d in _embed(gguf_f32, flat)["data"]]
    for i, (a, p, u) in enumerate(triples):
        va, vp, vu = v[3 * i], v[3 * i + 1], v[3 * i + 2]
        assert cosine(va, vp) > cosine(va, vu) + 0.2, (a, p, u, cosine(va, vp), cosine(va, vu))


def test_pooling_flag_and_no_normalize(gguf_f32):
    mean = _embed(gguf_f32, ["Hello world"], "--no-normalize")["data"][0]["embedding"]
    none = _embed(gguf_f32, ["Hello world"], "--pooling", "none", "--no-normalize")
    rows = np.array(none["data"][0]["embedding"]).reshape(-1, 384)
    assert rows.shape[0] == none["data"][0]["n_tokens"] == 4  # [CLS] hello world [SEP]
    np.testing.assert_allclose(rows.mean(0), mean, rtol=1e-4, atol=1e-5)
    cls = _embed(gguf_f32, ["Hello world"], "--pooling", "cls", "--no-normalize")["data"][0]["embedding"]
    np.testing.assert_allclose(rows[0], cls, rtol=1e-4, atol=1e-5)


def test_embed_bad_input_is_a_clear_error(gguf_f32, tmp_path):
    r = _run("embed", "-m", gguf_f32, "-p", "hi", "--pooling", "max", check=False)
    assert r.returncode != 0 and "--pooling 'max'" in r.stderr
    r = _run("embed", "-m", gguf_f32, check=False)
    assert r.returncode != 0 and "nothing to embed" in r.stderr
    r = _run("run", "-m", gguf_f32, "-p", "hi", "-n", "2", check=False)
    assert r.returncode != 0 and "encoder" in r.stderr


def test_convert_errors_leave_nothing_behind(minilm, tmp_path):
    out = tmp_path / "out.gguf"
    r = _run("convert", tmp_path / "nope", out, check=False)
    assert r.returncode != 0 and "not a directory" in r.stderr
    bad = tmp_path / "llama"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"architectures": ["MambaForCausalLM"]}))
    r = _run("convert", bad, out, check=False)
    assert r.returncode != 0 and "MambaForCausalLM" in r.stderr and "not supported" in r.stderr
    # A BERT folder without its tokenizer: the error names tokenizer.json, no file is left.
    half = tmp_path / "half"
    half.mkdir()
    for f in ("config.json", "model.safetensors"):
        (half / f).symlink_to(minilm / f)
    r = _run("convert", half, out, check=False)
    assert r.returncode != 0 and "tokenizer.json" in r.stderr
    nocfg = tmp_path / "nocfg"
    nocfg.mkdir()
    r = _run("convert", nocfg, out, check=False)
    assert r.returncode != 0 and "config.json" in r.stderr
    r = _run("convert", minilm, out, "--outtype", "q4_k", check=False)
    assert r.returncode != 0 and "--outtype" in r.stderr
    assert not out.exists() and not (tmp_path / "out.gguf.tmp").exists()


def test_decoder_embeddings_match_llama_cpp():
    # A decoder embeds too: every token's final hidden state (after the output norm, llama.cpp's
    # pooling "none"), and their mean / the last one.
    model = real_models.require("smollm2")
    llama_cpp = pytest.importorskip("llama_cpp")
    text = "Once upon a time there was a tiny robot."
    llm = llama_cpp.Llama(model_path=str(model), embedding=True, n_ctx=256, n_threads=2, verbose=False)
    try:
        want = np.array(llm.embed(text, normalize=False))
    finally:
        llm.close()
    out = _embed(model, [text], "--pooling", "none", "--no-normalize")
    got = np.array(out["data"][0]["embedding"]).reshape(-1, out["n_embd"])
    assert got.shape == want.shape
    cos = [cosine(a, b) for a, b in zip(got, want)]
    print("SmolLM2 Q4_1 per-token hidden state cosine vs llama.cpp:", ["%.5f" % c for c in cos])
    assert min(cos) >= 0.995, cos  # both sides quantize activations for the Q4_1 products, differently
    last = _embed(model, [text], "--no-normalize")["data"][0]["embedding"]  # default for decoders: last token
    np.testing.assert_allclose(last, got[-1], rtol=1e-4, atol=1e-4)
    # Inputs longer than one forward pass run alone, in several steps: 4-token passes give what
    # one pass gives.
    steps = _embed(model, [text, "hi"], "--no-normalize", "-b", "4")["data"]
    np.testing.assert_allclose(steps[0]["embedding"], got[-1], rtol=1e-3, atol=1e-3)


def test_bench_embed_reports_inputs_and_tokens_per_second(gguf_f32, tmp_path):
    """`edgellm bench --embed`: every backend embeds the same inputs; the token count equals what
    `edgellm embed` reports for those inputs, and the rates are the counts over the best run."""
    report, saved = tmp_path / "embed.json", tmp_path / "inputs.txt"
    backends = ["native"]
    try:
        import llama_cpp  # noqa: F401
        backends.append("llama_cpp_python")
    except ImportError:
        pass
    r = _run("bench", "--embed", "-m", gguf_f32, "--backends", *backends, "-t", "2", "--embed-inputs", "4",
             "--runs", "2", "--warmup", "0", "--json", report, "--embed-save-inputs", saved, "-q")
    assert "inputs/s" in r.stdout and "tokens/s" in r.stdout, r.stdout
    texts = saved.read_text().splitlines()
    assert len(texts) == 4 and len({len(t.split()) for t in texts}) > 1  # mixed lengths
    n_tokens = sum(d["n_tokens"] for d in _embed(gguf_f32, texts)["data"])
    j = json.loads(report.read_text())
    assert j["mode"] == "embed" and [x["backend"] for x in j["results"]] == backends
    for x in j["results"]:
        assert "error" not in x, x
        assert x["n_inputs"] == 4 and x["n_embd"] == 384 and len(x["runs_ms"]) == 2
        assert x["n_tokens"] == n_tokens, x  # llama.cpp's tokenizer counts the same tokens
        assert x["best_ms"] == min(x["runs_ms"]) > 0
        assert x["tokens_per_s"] == pytest.approx(n_tokens / x["best_ms"] * 1e3)
        assert x["inputs_per_s"] == pytest.approx(4 / x["best_ms"] * 1e3)


def test_bench_embed_bad_input_is_a_clear_error(gguf_f32, tmp_path):
    for args, want in ((["bench", "--embed"], "needs a model"),
                       (["bench", "--embed", "-m", gguf_f32, "--csv", tmp_path / "x.csv"], "not CSV"),
                       (["bench", "--embed", "-m", gguf_f32, "--embed-inputs", "0"], "--embed-inputs"),
                       (["bench", "--embed", "-m", gguf_f32, "--embed-file", tmp_path / "none.txt"], "cannot be read"),
                       (["bench", "--embed", "-m", gguf_f32, "-p", "64"], "workload of its own")):
        r = _run(*args, check=False)
        assert r.returncode != 0 and want in r.stderr, (args, r.stderr)
