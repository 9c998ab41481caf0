# Tokenizer oracles: llama.cpp's tokenizer (llama-cpp-python, vocab-only load) and ours must
# produce the same ids for random mixes of words, whitespace, digits, Unicode and special-token
# text, for every shared vocab, with and without BOS / special-token parsing. For WordPiece the
# oracle is HF `tokenizers` (BertWordPieceTokenizer over the same vocab), because llama.cpp's
# WPM drops Hangul vowel jamo after NFD where BERT keeps them.
import functools
import os
import pathlib
import random
import struct
import subprocess
import zlib

import pytest


SEP = "\n__ggml_vocab_test__\n"
SPECIAL_TEXTS = ["<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>",
                 "<|eot_id|>", "<tool_call>", "[CLS]", "[SEP]", "[UNK]", "<|assistant|>", "<|end|>", ">>TITLE<<",
                 "<fim_prefix>", "<\uff5cbegin\u2581of\u2581sentence\uff5c>"]
WHITESPACE = [" ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", " \n ", "\u3000", "\u00a0"]
UNICODE_RANGES = [(0x20, 0x7E), (0xA1, 0x24F), (0x300, 0x36F), (0x391, 0x3C9), (0x400, 0x4FF), (0x4E00, 0x4FFF),
                  (0x3040, 0x30FF), (0xAC00, 0xACFF), (0x1F300, 0x1F64F), (0x0600, 0x06FF), (0x0900, 0x097F)]


def _shared():
    return pathlib.Path(os.environ.get("EDGELLM_SHARED", pathlib.Path(__file__).parents[3] / "shared"))


def _tool():
    path = os.environ.get("EDGELLM_TOOL_tokenize_tool")
    if not path or not os.path.exists(path):
        pytest.skip("EDGELLM_TOOL_tokenize_tool not set or not built (run through ctest)")
    return path


def _vocabs():
    return sorted((_shared() / "tokenizer").glob("ggml-vocab-*.gguf"))


def _random_strings(vocab_path, n, seed, bracket_specials=True):
    rng = random.Random(seed)
    whitespace = WHITESPACE
    if "deepseek-llm" in vocab_path.name:
        # Known divergence: llama.cpp's std::wregex does not match U+3000 in DeepSeek's
        # punctuation class "\s?[...\u3000-\u3002]+", HF's regex (and PCRE2, so we) does.
        whitespace = [w for w in WHITESPACE if w != "\u3000"]
    words = []
    inp = pathlib.Path(str(vocab_path) + ".inp")
    if inp.exists():
        for s in inp.read_text(encoding="utf-8").split(SEP):
            words.extend(s.split())
    words = words or ["hello", "world", "don't", "Ünïcödé", "3.14159"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 12)):
            k = rng.random()
            if k < 0.35:
                parts.append(rng.choice(words))
            elif k < 0.55:
                parts.append(rng.choice(whitespace))
            elif k < 0.65:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
            elif k < 0.75:
                parts.append(rng.choice([t for t in SPECIAL_TEXTS if bracket_specials or not t.startswith("[")]))
            elif k < 0.85:
                parts.append("".join(rng.choice("!?.,;:'\"()[]{}<>-_=+*/\\|@#$%^&~`") for _ in range(rng.randint(1, 4))))
            else:
                lo, hi = rng.choice(UNICODE_RANGES)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 5))))
        out.append("".join(parts))
    return out


def _ours(vocab_path, texts, add_bos, parse_special):
    payload = b"".join(struct.pack("<I", len(t)) + t for t in (s.encode("utf-8") for s in texts))
    res = subprocess.run([_tool(), str(vocab_path), "1" if add_bos else "0", "1" if parse_special else "0"],
                         input=payload, capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    lines = res.stdout.decode().split("\n")
    ids = [[int(x) for x in lines[2 * i].split()] for i in range(len(texts))]
    decoded = [bytes.fromhex(lines[2 * i + 1]) for i in range(len(texts))]
    return ids, decoded


def _gguf_kv(data):
    """The metadata of a GGUF file as [(key, value type, value, the entry's bytes)]; numbers
    other than 32-bit integer arrays are read as None. A minimal reader: gguf.GGUFReader takes
    seconds per vocab because it builds objects for every merge."""
    assert data[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    assert version >= 2 and n_tensors == 0, (version, n_tensors)
    pos = 24
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string():
        nonlocal pos
        n, = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
        return data[pos - n:pos].decode("utf-8", errors="surrogateescape")

    def value(ty):
        nonlocal pos
        if ty == 8:
            return string()
        if ty == 9:
            ety, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if ety in (4, 5):
                vals = list(struct.unpack_from(f"<{n}{'I' if ety == 4 else 'i'}", data, pos))
                pos += 4 * n
                return vals
            return [value(ety) for _ in range(n)]
        pos += sizes[ty]
        return None

    out = []
    for _ in range(n_kv):
        begin = pos
        key = string()
        ty, = struct.unpack_from("<I", data, pos)
        pos += 4
        out.append((key, ty, value(ty), data[begin:pos]))
    return out


@functools.lru_cache(maxsize=None)
def _gguf_metadata(vocab_path):
    """{key: value} of a GGUF file as stored (token types before llama.cpp's load-time fixes)."""
    return {key: val for key, _, val, _ in _gguf_kv(vocab_path.read_bytes())}


def _tokens_and_types(vocab_path):
    fields = _gguf_metadata(vocab_path)
    tokens = fields["tokenizer.ggml.tokens"]
    return tokens, fields.get("tokenizer.ggml.token_type") or [1] * len(tokens)


def _is_wordpiece(vocab_path):
    return _gguf_metadata(vocab_path)["tokenizer.ggml.model"] == "bert"


def _hf_wordpiece(vocab_path):
    tokenizers = pytest.importorskip("tokenizers", reason="HF tokenizers is the WordPiece oracle (pip install tokenizers)")
    tokens, _ = _tokens_and_types(vocab_path)
    vocab = {}
    for i, t in enumerate(tokens):
        # The GGUF conversion wrote word starts as "\u2581x" and continuations without "##".
        key = t[1:] if t.startswith("\u2581") else (t if t.startswith("[") else "##" + t)
        vocab.setdefault(key, i)
    return tokenizers.BertWordPieceTokenizer(vocab, lowercase=True)


def _reference(vocab_path, add_bos, parse_special):
    if _is_wordpiece(vocab_path):
        hf = _hf_wordpiece(vocab_path)
        return lambda b: hf.encode(b.decode("utf-8"), add_special_tokens=add_bos).ids
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is the tokenizer oracle (pip install llama-cpp-python)")
    ref = llama_cpp.Llama(model_path=str(vocab_path), vocab_only=True, verbose=False)
    return lambda b: ref.tokenize(b, add_bos=add_bos, special=parse_special)


@pytest.mark.parametrize("vocab_path", _vocabs(), ids=lambda p: p.name)
@pytest.mark.parametrize("add_bos,parse_special", [(False, False), (True, True), (True, False)])
def test_ids_match_reference_tokenizer(vocab_path, add_bos, parse_special):
    seed = zlib.crc32(f"{vocab_path.name}/{add_bos}/{parse_special}".encode())
    # HF always recognises [CLS]-style tokens; without parse_special we must not, so the
    # WordPiece oracle only sees them when parse_special is on.
    texts = _random_strings(vocab_path, 300, seed, bracket_specials=parse_special or not _is_wordpiece(vocab_path))
    ours, _ = _ours(vocab_path, texts, add_bos, parse_special)
    reference = _reference(vocab_path, add_bos, parse_special)
    mismatches = []
    for text, got in zip(texts, ours):
        want = reference(text.encode("utf-8"))
        if got != want:
            mismatches.append((text, want, got))
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ; first: {mismatches[0]!r}"



# --- Literal token texts --------------------------------------------------------------------
# Special-token partitioning (llama.cpp's tokenizer_st_partition) decides per token type whether
# a token's literal text in the input becomes that one token: USER_DEFINED always, CONTROL and
# UNKNOWN only with parse_special, NORMAL / UNUSED / BYTE never (they go through the ordinary
# tokenizer). These vectors put the literal text of vocab entries into sentences and compare
# the ids with llama.cpp, without BOS, with and without parse_special.
TOKEN_CONTEXTS = ["Hello{}world",      # mid-sentence, no space around it
                  "Hello {} world",    # after a space (SPM: a lone "\u2581" may precede it)
                  "{}",                # the whole input
                  "a  {}\n b{}."]      # runs of whitespace (lstrip / rstrip), twice in one text
TYPE_NAMES = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 5: "unused", 6: "byte"}


def _llama_cpp_vocab(vocab_path):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is the tokenizer oracle (pip install llama-cpp-python)")
    return llama_cpp.Llama(model_path=str(vocab_path), vocab_only=True, verbose=False)


def _sample(ids, limit):
    # Deterministic: all of them when there are few, else every k-th plus the first and last.
    if len(ids) <= limit:
        return list(ids)
    k = -(-len(ids) // limit)
    return sorted(set(ids[::k]) | {ids[0], ids[-1]})


def _check_token_texts(vocab_path, ids):
    tokens, _ = _tokens_and_types(vocab_path)
    texts = [c.format(tokens[i], tokens[i]) for i in ids for c in TOKEN_CONTEXTS]
    ref = _llama_cpp_vocab(vocab_path)
    failures = []
    for parse_special in (False, True):
        ours, _ = _ours(vocab_path, texts, False, parse_special)
        for text, got in zip(texts, ours):
            want = ref.tokenize(text.encode("utf-8", errors="surrogateescape"), add_bos=False, special=parse_special)
            if got != want:
                failures.append((parse_special, text, want, got))
    assert not failures, f"{len(failures)} of {2 * len(texts)} differ; first (parse_special, text, want, got): {failures[0]!r}"


@pytest.mark.parametrize("vocab_path", [p for p in _vocabs() if 4 in _tokens_and_types(p)[1]], ids=lambda p: p.name)
def test_user_defined_token_text_is_that_token_as_in_llama_cpp(vocab_path):
    # Every USER_DEFINED token of the vocab in each context, with and without parse_special.
    # DeepSeek-LLM has 2398 of them: a deterministic sample of every 6th plus the first and last.
    _, types = _tokens_and_types(vocab_path)
    _check_token_texts(vocab_path, _sample([i for i, t in enumerate(types) if t == 4], 400))


@pytest.mark.parametrize("vocab_path", _vocabs(), ids=lambda p: p.name)
def test_token_text_of_every_type_matches_llama_cpp(vocab_path):
    # Up to 40 tokens of each type (normal, unknown, control, user-defined, unused, byte), each
    # type sampled as above.
    if _is_wordpiece(vocab_path):
        pytest.skip("WordPiece: llama.cpp's WPM is not the oracle here (see _reference)")
    _, types = _tokens_and_types(vocab_path)
    ids = []
    for ty in TYPE_NAMES:
        ids += _sample([i for i, t in enumerate(types) if t == ty], 40)
    _check_token_texts(vocab_path, sorted(ids))


def _derived_vocab(src, dst, added, name=None, pre=None):
    """Writes a copy of vocab `src` to `dst` with tokens `added` [(text, token type)] appended
    (new ids from n_vocab on; appending leaves every merge intact) and general.name /
    tokenizer.ggml.pre replaced where given."""
    def string(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    entries = []
    for key, ty, val, raw in _gguf_kv(src.read_bytes()):
        if key == "general.name" and name is not None:
            raw = string(key) + struct.pack("<I", 8) + string(name)
        elif key == "tokenizer.ggml.pre" and pre is not None:
            raw = string(key) + struct.pack("<I", 8) + string(pre)
        elif key == "tokenizer.ggml.tokens":
            toks = val + [t for t, _ in added]
            raw = string(key) + struct.pack("<IIQ", 9, 8, len(toks)) + b"".join(string(t) for t in toks)
        elif key == "tokenizer.ggml.token_type":
            types = val + [ty_ for _, ty_ in added]
            raw = string(key) + struct.pack("<IIQ", 9, 5, len(types)) + struct.pack(f"<{len(types)}i", *types)
        elif key == "tokenizer.ggml.scores":
            raise NotImplementedError("derived vocabs are made from vocabs without scores")
        entries.append(raw)
    dst.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + b"".join(entries))
    return dst


# Model-specific rules llama.cpp applies to token types and strip attributes at load time,
# checked on copies of the GPT-2 vocab with the relevant tokens appended (type 3 = CONTROL,
# 4 = USER_DEFINED, 1 = NORMAL).
DERIVED_VOCABS = {
    # gpt-oss: <|channel|>, <|message|>, <|start|>, <|constrain|> are always user-defined; with
    # <|return|> and <|call|> present, <|end|> is user-defined (and does not end generation).
    "harmony": dict(added=[("<|start|>", 3), ("<|channel|>", 3), ("<|message|>", 3), ("<|constrain|>", 3),
                           ("<|return|>", 3), ("<|call|>", 3), ("<|end|>", 3)]),
    # solar-open: <|calls|> and <|flush|> end generation (so become control); <|end|> as above.
    "solar-open": dict(added=[("<|calls|>", 4), ("<|flush|>", 4), ("<|end|>", 3)]),
    # Texts that end generation become control tokens whatever the vocab says; </s> goes back to
    # a normal token where <|tool_response> (gemma4) is there too.
    "gemma4": dict(added=[("</s>", 4), ("<|tool_response>", 4), ("<eos>", 4), ("<turn|>", 4), ("[EOT]", 4),
                          ("[EOS]", 4)]),
    "plamo": dict(added=[("</s>", 1), ("<s>", 1), ("<|plamo:eos|>", 3)]),
    "paddleocr": dict(added=[("</s>", 4)]),
    # <mask> strips whitespace to its left for jina-v2 pre-tokenizers, [MASK] for ModernBERT.
    "jina-v2-code": dict(added=[("<mask>", 3)], pre="jina-v2-code"),
    "modern-bert": dict(added=[("[MASK]", 3)], name="modern-bert-base"),
    # Phi-3 (by name): special tokens strip whitespace to their right, except <unk>, <s>,
    # <|endoftext|>; here on a byte-level BPE vocab.
    "phi3-bpe": dict(added=[("<|end|>", 3), ("<|user|>", 4), ("</s>", 4), ("<s>", 3), ("<unk>", 2)],
                     name="Phi3-test"),
}


@pytest.mark.parametrize("case", sorted(DERIVED_VOCABS))
def test_model_specific_token_rules_match_llama_cpp(case, tmp_path):
    src = _shared() / "tokenizer" / "ggml-vocab-gpt-2.gguf"
    if not src.exists():
        pytest.skip("gpt-2 vocab missing")
    spec = DERIVED_VOCABS[case]
    vocab_path = _derived_vocab(src, tmp_path / f"{case}.gguf", **spec)
    n = len(_tokens_and_types(src)[0])
    _check_token_texts(vocab_path, list(range(n, n + len(spec["added"]))))
