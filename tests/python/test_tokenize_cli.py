# `edgellm tokenize` / `edgellm detokenize` end to end: ids printed for the shared reference
# strings match the expected .out lines, detokenize inverts them, and bad input gives a clear
# error and a non-zero exit code.
import os
import pathlib
import subprocess

import pytest

SEP = "\n__ggml_vocab_test__\n"


def _cli():
    path = os.environ.get("EDGELLM_BIN")
    if not path or not os.path.exists(path):
        pytest.skip("EDGELLM_BIN not set or not built (run through ctest)")
    return path


def _shared():
    return pathlib.Path(os.environ.get("EDGELLM_SHARED", pathlib.Path(__file__).parents[3] / "shared"))


def _vectors():
    out = []
    for gguf in sorted((_shared() / "tokenizer").glob("ggml-vocab-*.gguf")):
        inp = pathlib.Path(str(gguf) + ".inp")
        if not inp.exists():
            continue
        texts = inp.read_text(encoding="utf-8").split(SEP)[:-1]
        ids = pathlib.Path(str(gguf) + ".out").read_text(encoding="utf-8").splitlines()
        # A few strings per vocab keep the test quick: a plain one, the longest, one with
        # leading spaces where there is one.
        picks = {1, max(range(len(texts)), key=lambda i: len(texts[i]))}
        picks |= {next((i for i, t in enumerate(texts) if t.startswith("  ")), 1)}
        for i in sorted(picks):
            out.append(pytest.param(gguf, texts[i], ids[i], id=f"{gguf.name}-{i}"))
    return out


def _run(*args, input_bytes=None):
    return subprocess.run([_cli(), *args], input=input_bytes, capture_output=True, timeout=300)


@pytest.mark.parametrize("gguf,text,expected", _vectors())
def test_tokenize_ids_match_reference_and_detokenize_inverts(gguf, text, expected, tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes(text.encode("utf-8"))
    res = _run("tokenize", "-m", str(gguf), "-f", str(f), "--no-bos", "--ids")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    got = res.stdout.decode().strip()
    assert got.split() == expected.split()
    if "bert" in gguf.name:
        return  # WordPiece is lossy (lowercase, whitespace)
    res = _run("detokenize", "-m", str(gguf), *got.split())
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert res.stdout.decode("utf-8")[:-1] == text  # the CLI ends the text with a newline


def test_tokenize_lists_id_and_piece_and_adds_bos_by_default():
    gguf = _shared() / "models" / "stories260K.gguf"
    if not gguf.exists():
        pytest.skip("stories260K.gguf missing")
    res = _run("tokenize", "-m", str(gguf), "-p", "Once upon a time")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    lines = res.stdout.decode().splitlines()
    assert lines[0].split() == ["1", "->", "'<s>'"]
    assert [l.split(" -> ")[1] for l in lines[1:]] == ["' Once'", "' upon'", "' a'", "' time'"]


def test_stdin_and_parse_special():
    gguf = _shared() / "tokenizer" / "ggml-vocab-qwen2.gguf"
    if not gguf.exists():
        pytest.skip("qwen2 vocab missing")
    text = b"<|im_start|>user\nhi<|im_end|>"
    special = _run("tokenize", "-m", str(gguf), "-f", "-", "--ids", "--parse-special", input_bytes=text)
    plain = _run("tokenize", "-m", str(gguf), "-f", "-", "--ids", input_bytes=text)
    assert special.returncode == 0 and plain.returncode == 0
    s_ids = special.stdout.split()
    assert s_ids[0] == b"151644" and s_ids[-1] == b"151645"
    assert b"151644" not in plain.stdout.split()
    back = _run("detokenize", "-m", str(gguf), "--render-special", special.stdout.decode().strip())
    assert back.stdout.decode()[:-1] == text.decode()


@pytest.mark.parametrize("args,message", [
    (["tokenize", "-m", "/nonexistent.gguf", "-p", "x"], "nonexistent"),
    (["tokenize", "-m", "{vocab}"], "exactly one of -p"),
    (["tokenize", "-m", "{vocab}", "-p", "x", "-f", "y"], "exactly one of -p"),
    (["detokenize", "-m", "{vocab}", "12abc"], "not a token id"),
    (["detokenize", "-m", "{vocab}", "99999999"], "outside the vocab"),
])
def test_bad_input_is_a_clear_error(args, message):
    vocab = _shared() / "tokenizer" / "ggml-vocab-gpt-2.gguf"
    if not vocab.exists():
        pytest.skip("gpt-2 vocab missing")
    res = _run(*[a.replace("{vocab}", str(vocab)) for a in args])
    assert res.returncode != 0
    err = res.stderr.decode(errors="replace")
    assert message in err and "error" in err.lower()


@pytest.mark.parametrize("name,token", [("phi-3", "</s>"), ("qwen2", "<tool_call>"), ("mpt", " " * 8),
                                        ("deepseek-llm", "\u00f8")])
@pytest.mark.parametrize("parse_special", [False, True])
def test_user_defined_token_text_matches_llama_cpp_through_the_cli(name, token, parse_special):
    # The literal text of a token, mid-sentence and after a space, through `edgellm tokenize
    # --no-bos [--parse-special]`, against llama-cpp-python (the oracle test covers every one).
    gguf = _shared() / "tokenizer" / f"ggml-vocab-{name}.gguf"
    if not gguf.exists():
        pytest.skip(f"{gguf.name} missing")
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is the tokenizer oracle")
    ref = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    for text in (f"Hello{token}world", f"Hello {token} world"):
        res = _run("tokenize", "-m", str(gguf), "-p", text, "--no-bos", "--ids",
                   *(["--parse-special"] if parse_special else []))
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        want = ref.tokenize(text.encode("utf-8"), add_bos=False, special=parse_special)
        assert [int(x) for x in res.stdout.split()] == want, text
