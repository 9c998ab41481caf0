"""Shared helpers for the chat-template oracle tests: a jinja2 environment configured the way
HF transformers renders chat templates, and a runner for our chat_render test tool."""
import datetime
import json
import os
import subprocess

FIXED_NOW = 1721001600  # 2024-07-15 00:00:00 UTC, fed to strftime_now() on both sides


def hf_environment():
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(FIXED_NOW, datetime.timezone.utc).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# Where jinja2 raises but edgellm deliberately renders (as llama.cpp's minja does), so that
# templates written for llama.cpp work. Each entry is a fragment of jinja2's error message.
KNOWN_LENIENCIES = {
    "Object of type generator is not JSON serializable":
        "map/select results are lists for us (jinja2: generators that tojson rejects)",
    "access to attribute 'append' of 'list' object is unsafe":
        "list.append is allowed (jinja2's immutable sandbox forbids it)",
}


def render_python(env, source, context):
    """(rendered text, None) or (None, the exception jinja2 raised)."""
    try:
        return env.from_string(source).render(**context), None
    except Exception as e:  # noqa: BLE001 - any template failure counts as "raises"
        return None, e


def leniency_for(exc):
    """The documented reason edgellm renders where jinja2 raised `exc`, or None."""
    for fragment, reason in KNOWN_LENIENCIES.items():
        if fragment in str(exc):
            return reason
    return None


def chat_render_tool():
    return os.environ.get("EDGELLM_TOOL_chat_render")


def render_ours(tool, template_path, context):
    """(rendered text or None on a template error, stderr)."""
    ctx = dict(context)
    ctx["__now__"] = FIXED_NOW
    proc = subprocess.run([tool, str(template_path), "-"], input=json.dumps(ctx).encode("utf-8"),
                          capture_output=True, timeout=60)
    if proc.returncode == 2:
        return None, proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"chat_render crashed (rc={proc.returncode}): {proc.stderr!r}")
    return proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8", "replace")


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello! How are you?"},
    ],
    "user_only": [
        {"role": "user", "content": "What is 2 + 2?"},
    ],
    "multi_turn": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "  Another one, please.\n"},
        {"role": "assistant", "content": "11"},
        {"role": "user", "content": "Thanks"},
    ],
    "unicode": [
        {"role": "user", "content": "Grüße aus Zürich 🌍 — 你好，世界! \"quoted\" 'single' \\ back\tslash"},
        {"role": "assistant", "content": "こんにちは ✓\nSecond line."},
        {"role": "user", "content": "emoji 👩‍💻 and RTL שלום"},
    ],
    "tools": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather",
                                      "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "name": "get_weather", "tool_call_id": "call_1",
         "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
        {"role": "user", "content": "And in Zürich?"},
    ],
}


def contexts():
    """(id, context) pairs: every conversation with and without the generation prompt."""
    out = []
    for name, messages in CONVERSATIONS.items():
        for gen in (True, False):
            ctx = {"messages": messages, "add_generation_prompt": gen,
                   "bos_token": "<s>", "eos_token": "</s>"}
            if name == "tools":
                ctx["tools"] = [WEATHER_TOOL]
            out.append((f"{name}-gen{int(gen)}", ctx))
    return out
