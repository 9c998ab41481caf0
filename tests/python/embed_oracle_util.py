"""numpy oracle for BERT-class sentence embeddings, read straight from a Hugging Face folder.

Reads model.safetensors by hand (8-byte little-endian header length, JSON header, raw bytes: no
torch, no safetensors package) and runs the encoder as transformers' BertModel does (exact erf
GELU, post-LayerNorm, bidirectional attention), then sentence-transformers' pooling from
1_Pooling/config.json and L2 normalisation.
"""
import json
import math
import struct
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}


def read_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).astype(np.float32 if info["dtype"] != "I64" else np.int64)
    return out


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class BertReference:
    def __init__(self, folder):
        folder = Path(folder)
        self.cfg = json.loads((folder / "config.json").read_text())
        self.w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in
                  read_safetensors(folder / "model.safetensors").items() if v.dtype != np.int64}
        pool = json.loads((folder / "1_Pooling" / "config.json").read_text()) \
            if (folder / "1_Pooling" / "config.json").exists() else {"pooling_mode_mean_tokens": True}
        self.pooling = "cls" if pool.get("pooling_mode_cls_token") else "mean"

    def hidden(self, ids):
        w, cfg = self.w, self.cfg
        n = len(ids)
        n_head = cfg["num_attention_heads"]
        eps = cfg.get("layer_norm_eps", 1e-12)
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        for il in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{il}."
            lin = lambda h, name: h @ w[p + name + ".weight"].T + w[p + name + ".bias"]  # noqa: E731
            q, k, v = (lin(x, "attention.self." + t) for t in ("query", "key", "value"))
            d = q.shape[1] // n_head
            q, k, v = (t.reshape(n, n_head, d).transpose(1, 0, 2) for t in (q, k, v))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, n_head * d)
            x = _layer_norm(x + lin(ctx, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], eps)
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
            x = _layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], eps)
        return x

    def embed(self, ids, normalize=True):
        h = self.hidden(ids)
        v = h[0] if self.pooling == "cls" else h.mean(0)
        return v / np.linalg.norm(v) if normalize else v


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
