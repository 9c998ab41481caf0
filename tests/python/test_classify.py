# `edgellm classify` on sequence-classification checkpoints: small random-weight
# DistilBertForSequenceClassification (the seed's sentiment model shape: pre_classifier + ReLU) and
# BertForSequenceClassification (pooler + tanh) folders are written here with the real uncased
# WordPiece tokenizer of all-MiniLM-L6-v2, converted by `edgellm convert`, and the label
# probabilities must match a numpy forward pass of the HF model.
import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

import real_models
from embed_oracle_util import _erf, _layer_norm

BIN = os.environ.get("EDGELLM_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="EDGELLM_BIN not set (run through ctest)")
DIM, FF, LAYERS, HEADS, NPOS = 32, 64, 2, 4, 64
LABELS = ["NEGATIVE", "POSITIVE"]
TEXTS = ["I loved this movie, it was wonderful!", "Terrible. A waste of two hours.", "ok"]


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def names(kind):
    if kind == "distilbert":
        p = "distilbert."
        return dict(word=p + "embeddings.word_embeddings", pos=p + "embeddings.position_embeddings", types=None,
                    eln=p + "embeddings.LayerNorm", layer=p + "transformer.layer.{}.",
                    q="attention.q_lin", k="attention.k_lin", v="attention.v_lin", o="attention.out_lin",
                    ln1="sa_layer_norm", up="ffn.lin1", down="ffn.lin2", ln2="output_layer_norm",
                    pre="pre_classifier", act=lambda x: np.maximum(x, 0))
    p = "bert."
    return dict(word=p + "embeddings.word_embeddings", pos=p + "embeddings.position_embeddings",
                types=p + "embeddings.token_type_embeddings", eln=p + "embeddings.LayerNorm",
                layer=p + "encoder.layer.{}.", q="attention.self.query", k="attention.self.key",
                v="attention.self.value", o="attention.output.dense", ln1="attention.output.LayerNorm",
                up="intermediate.dense", down="output.dense", ln2="output.LayerNorm", pre=p + "pooler.dense",
                act=np.tanh)


def write_folder(folder, kind, n_vocab, seed=5):
    rng = np.random.default_rng(seed)
    n = names(kind)
    w = {}
    lin = lambda name, rows, cols: w.update({name + ".weight": rng.normal(0, 1 / np.sqrt(cols), (rows, cols)),  # noqa
                                             name + ".bias": 0.1 * rng.normal(size=rows)})
    ln = lambda name: w.update({name + ".weight": 1 + 0.1 * rng.normal(size=DIM),  # noqa: E731
                                name + ".bias": 0.1 * rng.normal(size=DIM)})
    w[n["word"] + ".weight"] = rng.normal(0, 1, (n_vocab, DIM))
    w[n["pos"] + ".weight"] = rng.normal(0, 0.5, (NPOS, DIM))
    if n["types"]:
        w[n["types"] + ".weight"] = rng.normal(0, 0.5, (2, DIM))
    ln(n["eln"])
    for il in range(LAYERS):
        p = n["layer"].format(il)
        for t in ("q", "k", "v", "o"):
            lin(p + n[t], DIM, DIM)
        ln(p + n["ln1"])
        lin(p + n["up"], FF, DIM)
        lin(p + n["down"], DIM, FF)
        ln(p + n["ln2"])
    lin(n["pre"], DIM, DIM)
    w["classifier.weight"] = rng.normal(0, 1 / np.sqrt(DIM), (2, DIM))
    w["classifier.bias"] = np.array([0.1, -0.1])
    folder.mkdir(parents=True)
    write_safetensors(folder / "model.safetensors", w)
    id2label = {str(i): lab for i, lab in enumerate(LABELS)}
    if kind == "distilbert":
        cfg = {"architectures": ["DistilBertForSequenceClassification"], "dim": DIM, "hidden_dim": FF,
               "n_layers": LAYERS, "n_heads": HEADS, "max_position_embeddings": NPOS, "activation": "gelu",
               "sinusoidal_pos_embds": False, "vocab_size": n_vocab, "id2label": id2label}
    else:
        cfg = {"architectures": ["BertForSequenceClassification"], "hidden_size": DIM, "intermediate_size": FF,
               "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "max_position_embeddings": NPOS,
               "hidden_act": "gelu", "type_vocab_size": 2, "vocab_size": n_vocab, "layer_norm_eps": 1e-12,
               "id2label": id2label}
    (folder / "config.json").write_text(json.dumps(cfg))
    return w


def reference_logits(w, kind, ids):
    n = names(kind)
    x = w[n["word"] + ".weight"][ids] + w[n["pos"] + ".weight"][:len(ids)]
    if n["types"]:
        x = x + w[n["types"] + ".weight"][0]
    eps = 1e-12
    x = _layer_norm(x, w[n["eln"] + ".weight"], w[n["eln"] + ".bias"], eps)
    d = DIM // HEADS
    for il in range(LAYERS):
        p = n["layer"].format(il)
        lin = lambda h, name: h @ w[p + name + ".weight"].T + w[p + name + ".bias"]  # noqa: E731
        q, k, v = (lin(x, n[t]).reshape(len(ids), HEADS, d).transpose(1, 0, 2) for t in ("q", "k", "v"))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = _layer_norm(x + lin((s @ v).transpose(1, 0, 2).reshape(len(ids), DIM), n["o"]),
                        w[p + n["ln1"] + ".weight"], w[p + n["ln1"] + ".bias"], eps)
        h = lin(x, n["up"])
        h = 0.5 * h * (1 + _erf(h / np.sqrt(2)))
        x = _layer_norm(x + lin(h, n["down"]), w[p + n["ln2"] + ".weight"], w[p + n["ln2"] + ".bias"], eps)
    h = n["act"](x[0] @ w[n["pre"] + ".weight"].T + w[n["pre"] + ".bias"])
    return h @ w["classifier.weight"].T + w["classifier.bias"]


@pytest.mark.parametrize("kind", ["distilbert", "bert"])
def test_classify_matches_numpy_forward(kind, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    minilm = real_models.require("minilm")
    folder = tmp_path / kind
    tok_cfg = json.loads((minilm / "config.json").read_text())
    w = write_folder(folder, kind, tok_cfg["vocab_size"])
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(minilm / f, folder / f)
    out = tmp_path / f"{kind}.gguf"
    r = subprocess.run([BIN, "convert", str(folder), str(out), "--outtype", "f32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    args = [BIN, "classify", "-m", str(out), "--json", "-t", "2"]
    for t in TEXTS:
        args += ["-p", t]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    tok = tokenizers.Tokenizer.from_file(str(minilm / "tokenizer.json"))
    tok.no_padding()
    for text, g in zip(TEXTS, got):
        want = reference_logits(w, kind, tok.encode(text).ids)
        np.testing.assert_allclose(g["logits"], want, rtol=1e-4, atol=1e-4)
        p = np.exp(want - want.max())
        np.testing.assert_allclose([g["probs"][lab] for lab in LABELS], p / p.sum(), atol=1e-5)
        assert g["label"] == LABELS[int(want.argmax())]
    # The text form: label (p) then every label's probability.
    r = subprocess.run([BIN, "classify", "-m", str(out), "-p", TEXTS[0], "-t", "2"], capture_output=True, text=True)
    assert r.returncode == 0 and "NEGATIVE=" in r.stdout and "POSITIVE=" in r.stdout


def test_classify_refuses_a_model_without_a_head(tmp_path):
    minilm = real_models.require("minilm")
    out = tmp_path / "minilm.gguf"
    subprocess.run([BIN, "convert", str(minilm), str(out)], check=True, capture_output=True)
    r = subprocess.run([BIN, "classify", "-m", str(out), "-p", "hi"], capture_output=True, text=True)
    assert r.returncode != 0 and "no classification head" in r.stderr
