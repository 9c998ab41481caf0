"""`edgellm chat` as a person uses it, in a pseudo-terminal (pexpect): Ctrl-C mid-reply keeps the
partial reply and the conversation goes on with it in the prompt, arrow-key editing, history
recall (Up, Ctrl-R) and the history file, bracketed paste as one turn, /save -> /load, Ctrl-C twice
and Ctrl-D to leave; and with piped stdin: \"\"\" blocks and context overflow dropping whole turns."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import real_models

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"
pexpect = pytest.importorskip("pexpect", reason="pexpect not installed (pip install pexpect)")

pytestmark = [
    pytest.mark.skipif(not BIN, reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} missing (the shared test models)"),
]

UP, LEFT = "\x1b[A", "\x1b[D"
PROMPT = r"\r\n(?:\x1b\[\?2004h)?> "  # a new prompt (bracketed paste is switched on before it)


def spawn(tmp_path, *args, model=STORIES):
    env = dict(os.environ, TERM="xterm", NO_COLOR="1", XDG_STATE_HOME=str(tmp_path / "state"))
    c = pexpect.spawn(BIN, ["chat", "-m", str(model), "-t", "2", *args], env=env, encoding="utf-8", timeout=60,
                      dimensions=(40, 200))
    c.expect("Type a message")
    c.expect("> ")
    return c


def say(c, text):
    c.send(text + "\r")
    c.expect(PROMPT)  # the reply ended and the next prompt is there


def saved(c, path):
    c.send(f"/save {path}\r")
    c.expect(r"\(saved \d+ messages")
    c.expect("> ")
    return json.loads(Path(path).read_text())["messages"]


def test_ctrl_c_stops_the_reply_and_the_conversation_goes_on(tmp_path):
    model = real_models.require("smollm2")
    c = spawn(tmp_path, "--temp", "0", "-n", "600", "--show-prompt", "--stats", model=model)
    c.send("Write a very long story about a cat named Tom who sails around the world.\r")
    c.expect(r"\[/prompt\]")
    c.expect(r"\w+ \w+ \w+ \w+ \w+")  # a few words of the reply have streamed
    # --stats on a terminal: the live speed in the window title while the reply streams.
    c.expect(r"\x1b\]2;edgellm chat: \d+ tokens, [\d.]+ tokens/s\x07")
    c.sendintr()
    c.expect(r"\(stopped; the reply so far is kept\)")
    c.expect("> ")
    c.send("What was the name of the cat?\r")
    c.expect(r"\[prompt\]\r\n(.*?)\[/prompt\]")
    second_prompt = c.match.group(1).replace("\r\n", "\n")
    c.expect(PROMPT)
    msgs = saved(c, tmp_path / "conv.json")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    partial = msgs[1]["content"]
    assert 0 < len(partial.split()) < 600 and partial.strip() in second_prompt
    assert msgs[3]["content"].strip()
    c.sendeof()
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0


def test_editing_history_paste_save_load(tmp_path):
    c = spawn(tmp_path, "--temp", "0", "-n", "8")
    say(c, "Hello wrld" + LEFT * 3 + "o")                     # arrow keys edit the line
    c.send(UP + "\r")                                        # Up recalls it
    c.expect(PROMPT)
    c.send("\x12" + "Hel")                                   # Ctrl-R searches the history
    c.expect("Hello world")
    c.send("\r")
    c.expect(PROMPT)
    c.send("\x1b[200~line one\nline two\nline three\x1b[201~")  # a bracketed paste ...
    c.expect(r"\[pasted text #1: 3 lines\]")
    c.send(" and more\r")                                     # ... is one turn with what follows
    c.expect(PROMPT)
    msgs = saved(c, tmp_path / "a.json")
    users = [m["content"] for m in msgs if m["role"] == "user"]
    assert users == ["Hello world", "Hello world", "Hello world", "line one\nline two\nline three and more"]
    c.send("/reset\r")
    c.expect(r"\(history cleared\)")
    c.send(f"/load {tmp_path / 'a.json'}\r")
    c.expect(r"\(loaded 8 messages")
    c.expect("> ")
    assert saved(c, tmp_path / "b.json") == msgs
    c.send("/set temp 0.5\r")
    c.expect(r"\(temp = 0.5\)")
    c.send("/set temp hot\r")
    c.expect("temp must be a number")
    c.expect("> ")
    c.sendintr()                                             # Ctrl-C twice at the prompt leaves
    c.expect("Ctrl-C again")
    c.sendintr()
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0
    # libedit's history file: one entry a line, blanks and newlines in vis(3) octal escapes.
    lines = (tmp_path / "state" / "edgellm" / "history").read_text().splitlines()
    entries = [re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line) for line in lines[1:]]
    assert lines[0] == "_HiStOrY_V2_" and entries[0] == "Hello world"
    assert "line one\nline two\nline three and more" in entries


def run_piped(stdin, *args):
    return subprocess.run([BIN, "chat", "-m", str(STORIES), "-t", "2", *args], input=stdin, capture_output=True,
                          text=True, timeout=120)


def test_piped_multiline_block_is_one_turn(tmp_path):
    out = tmp_path / "m.json"
    p = run_piped(f'"""first line\nsecond line"""\n/save {out}\n', "--temp", "0", "-n", "4")
    assert p.returncode == 0, p.stderr
    assert [m["content"] for m in json.loads(out.read_text())["messages"] if m["role"] == "user"] == [
        "first line\nsecond line"]


def test_context_overflow_drops_whole_oldest_turns(tmp_path):
    out = tmp_path / "c.json"
    turns = "".join(f"Turn {i}: once upon a time there was a little girl who liked to play outside.\n" for i in range(6))
    p = run_piped(turns + f"/save {out}\n", "--temp", "0", "-n", "24", "-c", "128", "--system", "Be kind.")
    assert p.returncode == 0, p.stderr
    assert "dropped the oldest turn" in p.stderr
    msgs = json.loads(out.read_text())["messages"]
    assert msgs[0] == {"role": "system", "content": "Be kind."}
    roles = [m["role"] for m in msgs[1:]]
    assert roles == ["user", "assistant"] * (len(roles) // 2) and len(roles) < 12  # whole turns went
    assert msgs[-2]["content"].startswith("Turn 5:")
    assert "stop: length" not in p.stdout


def test_a_message_larger_than_the_context_is_refused_and_chat_goes_on(tmp_path):
    p = run_piped("word " * 400 + "\nHi\n", "--temp", "0", "-n", "8", "-c", "64")
    assert p.returncode == 0, p.stderr
    assert "it was not sent" in p.stdout
    assert re.search(r"> Hi\n.+", p.stdout)
