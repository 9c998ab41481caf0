"""End-to-end tests of `edgellm chat` with piped stdin on stories260K: the fallback template is
announced, turns are echoed and answered, /reset and /exit work, greedy replies match
`edgellm run` on the same formatted prompt, and bad template names fail clearly."""
import os
import pathlib
import subprocess

import pytest

SHARED = pathlib.Path(os.environ.get("EDGELLM_SHARED", pathlib.Path(__file__).parent / "../../../shared"))
MODEL = SHARED / "models" / "stories260K.gguf"


@pytest.fixture(scope="module")
def cli():
    b = os.environ.get("EDGELLM_BIN")
    if not b or not os.path.exists(b):
        pytest.skip("EDGELLM_BIN not set or not built (run through ctest)")
    if not MODEL.exists():
        pytest.skip(f"model missing: {MODEL}")
    return b


def chat(cli, stdin, *args):
    return subprocess.run([cli, "chat", "-m", str(MODEL), "--temp", "0", "-n", "24", "-t", "1", *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_piped_turns_reset_and_exit(cli):
    p = chat(cli, "Hello there\n\nTell me a story\n/reset\n/exit\nnever read\n")
    assert p.returncode == 0, p.stderr
    assert "chat template: llama2" in p.stderr  # no template, no chat tokens, llama arch
    lines = p.stdout.splitlines()
    assert lines[0] == "> Hello there"
    assert "> Tell me a story" in lines
    assert "(history cleared)" in lines
    assert "never read" not in p.stdout
    assert len(lines[1].strip()) > 0  # a reply was streamed


def test_greedy_reply_matches_run_on_the_same_prompt(cli):
    p = chat(cli, "Hello there\n")
    assert p.returncode == 0, p.stderr
    reply = p.stdout.splitlines()[1]
    # llama2 fallback: "<s>[INST] Hello there [/INST]"; `run` adds the BOS itself.
    r = subprocess.run([cli, "run", "-m", str(MODEL), "-p", "[INST] Hello there [/INST]", "--temp", "0",
                        "-n", "24", "-t", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == reply


def test_history_is_part_of_the_next_prompt(cli):
    p = chat(cli, "Hi\nAgain\n", "--show-prompt", "--system", "Be kind.")
    assert p.returncode == 0, p.stderr
    prompts = p.stderr.split("[prompt]\n")[1:]
    assert len(prompts) == 2
    assert "<<SYS>>\nBe kind.\n<</SYS>>" in prompts[0]
    assert "[INST]" in prompts[1] and "Hi" in prompts[1] and "Again" in prompts[1]
    assert prompts[1].count("</s>") == 1  # the first reply closed with EOS


def test_template_override_by_name_and_file(cli, tmp_path):
    p = chat(cli, "Hi\n", "--chat-template", "chatml", "--show-prompt")
    assert p.returncode == 0, p.stderr
    assert "chat template: chatml (chosen by the user)" in p.stderr
    assert "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" in p.stderr
    f = tmp_path / "t.jinja"
    f.write_text("{% for m in messages %}Q: {{ m.content }}\n{% endfor %}A:", encoding="utf-8")
    p = chat(cli, "Hi\n", "--chat-template", str(f), "--show-prompt")
    assert p.returncode == 0, p.stderr
    assert "Q: Hi\nA:" in p.stderr


def test_bad_template_fails_with_a_clear_message(cli, tmp_path):
    p = chat(cli, "Hi\n", "--chat-template", "nope")
    assert p.returncode != 0
    assert "unknown chat template 'nope'" in p.stderr and "chatml" in p.stderr
    f = tmp_path / "bad.jinja"
    f.write_text("{% for m in messages %}\n{{ m.content", encoding="utf-8")
    p = chat(cli, "Hi\n", "--chat-template", str(f))
    assert p.returncode != 0
    assert "line 2" in p.stderr
