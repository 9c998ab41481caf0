"""Hugging Face folders built from the shared vocab-only GGUF files (../shared/tokenizer): a GGUF
metadata reader and a tokenizer.json + tokenizer_config.json writer for byte-level BPE vocabs.
Used by test_convert_decoder.py and backend_models.py (the Python backends' test model)."""
import functools
import json
import struct
from pathlib import Path

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@functools.lru_cache(maxsize=4)
def read_kv(path):
    """A GGUF file's metadata as {key: value}, parsed here with struct (gguf-py's reader takes
    ~10 s on a 150k-token vocab on the CI machine; this takes well under one)."""
    data = Path(path).read_bytes()
    assert data[:4] == b"GGUF"
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    off = 24

    def string():
        nonlocal off
        n = struct.unpack_from("<Q", data, off)[0]
        off += 8 + n
        return data[off - n:off].decode("utf-8", errors="surrogateescape")

    def value(t):
        nonlocal off
        if t == 8:
            return string()
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, off)
            off += 12
            if et in _SCALARS:
                size = struct.calcsize(_SCALARS[et])
                off += n * size
                return list(struct.unpack_from("<" + _SCALARS[et][1] * n, data, off - n * size))
            return [value(et) for _ in range(n)]
        v = struct.unpack_from(_SCALARS[t], data, off)[0]
        off += struct.calcsize(_SCALARS[t])
        return v

    out = {}
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", data, off)
        off += 4
        out[key] = value(t)
    return out


def field(path, key):
    return read_kv(str(path)).get(key)


def write_tokenizer(folder, vocab_gguf, regex, nfc=False, ignore_merges=False, bos_template=False):
    """Writes tokenizer.json and tokenizer_config.json for the byte-level BPE vocab in vocab_gguf;
    returns the vocab size. bos_template: a TemplateProcessing post-processor that puts the BOS
    token first, as real Llama 3 tokenizer.json files have (so every tokenizer that reads the
    folder adds it, not only those that honour tokenizer_config's add_bos_token)."""
    r = Path(vocab_gguf)
    tokens, types = field(r, "tokenizer.ggml.tokens"), field(r, "tokenizer.ggml.token_type")
    vocab = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 1}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": ty == 3} for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (3, 4)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    post = byte_level
    bos_id = field(r, "tokenizer.ggml.bos_token_id")
    if bos_template and bos_id is not None:
        bos = tokens[bos_id]
        post = {"type": "Sequence", "processors": [byte_level, {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}]}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": {"type": "NFC"} if nfc else None,
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
               byte_level]},
           "post_processor": post, "decoder": byte_level,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                     "ignore_merges": ignore_merges, "vocab": vocab,
                     "merges": list(field(r, "tokenizer.ggml.merges"))}}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    tcfg = {"add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token"))}
    for kind in ("bos", "eos"):
        i = field(r, f"tokenizer.ggml.{kind}_token_id")
        if i is not None:
            tcfg[f"{kind}_token"] = tokens[i]
    if field(r, "tokenizer.chat_template"):
        tcfg["chat_template"] = field(r, "tokenizer.chat_template")
    (folder / "tokenizer_config.json").write_text(json.dumps(tcfg), encoding="utf-8")
    return len(tokens)


def logits_both_engines(tool, gguf, ids, workdir, **llama_kwargs):
    """Logits of `ids` (all positions, float64) from edgellm (tests/tools/engine_logits, 2 threads,
    -c 64) and from llama-cpp-python (logits_all) on the same GGUF: (edgellm, llama.cpp)."""
    import subprocess

    import llama_cpp
    import numpy as np
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=64, n_batch=64, logits_all=True, n_threads=2, verbose=False,
                          **llama_kwargs)
    llm.eval(ids)
    lcpp = np.array(llm.scores[: len(ids)], dtype=np.float64)
    llm.close()
    out = Path(workdir) / "logits.f32"
    r = subprocess.run([tool, str(gguf), " ".join(map(str, ids)), str(out), "2", "64"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
    return got, lcpp


def assert_close_to_reference(case, ref, engines, bound=0.005):
    """Each engine's logits within `bound` of the reference's spread, with the same argmax everywhere."""
    import numpy as np
    for name, x in engines:
        err = np.abs(x - ref).max() / ref.std()
        print(f"{case}: {name} vs numpy HF forward: max error {err:.2e} of the logit spread")
        assert err < bound, (name, err)
        assert (x.argmax(1) == ref.argmax(1)).all(), name
