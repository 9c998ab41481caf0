"""Tool calls against the real clients on SmolLM2-135M-Instruct (its ChatML template knows no
tools, so the generic format runs: tools in the system message, the reply a JSON object), plus
the Hermes/Qwen 2.5 format through that family's template (--chat-template;
the model does not know them, so only forced calls are checked: grammar, rendering, parsing).
- OpenAI `tools` with tool_choice required / named -> tool_calls whose arguments validate
  against the declared schema (jsonschema), finish_reason "tool_calls";
- the streamed deltas of a call reassemble to the call of the same request unstreamed (same seed);
- a tool result (role "tool", tool_call_id) renders back through the template;
- tool_choice "none", bad tools / tool_choice -> 400 naming the problem;
- the `ollama` client: tools on /api/chat -> message.tool_calls with arguments as an object
  (and `keep_alive` accepted)."""
import concurrent.futures as cf
import json
import os
from pathlib import Path

import pytest

import real_models
from net_util import Server

openai = pytest.importorskip("openai", reason="the openai client is a test dependency (pip install openai)")
ollama = pytest.importorskip("ollama", reason="the ollama client is a test dependency (pip install ollama)")
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test dependency (pip install jsonschema)")
requests = pytest.importorskip("requests", reason="requests is a test dependency")

BIN = os.environ.get("EDGELLM_BIN")
SMOL = real_models.path("smollm2")
SMOL_NAME = "SmolLM2-135M-Instruct.Q4_1"
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))

pytestmark = [
    pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not SMOL.exists(), reason=f"{SMOL} is missing: run scripts/fetch-models.sh smollm2"),
]

WEATHER = {"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 20, "description": "the city"},
    "unit": {"type": "string", "enum": ["c", "f"], "description": "the unit"}},
    "required": ["city", "unit"]}
TIME = {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 10, "description": "time zone"}},
        "required": ["tz"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "description": "Local time in a time zone",
                                           "parameters": TIME}}]
SCHEMA_OF = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]
MAX_TOKENS = 80


@pytest.fixture(scope="module")
def server():
    s = Server(SMOL, "--parallel", "4", "-c", "4096")
    yield s
    s.close()


def client_of(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none")


def check_call(call, want_name=None):
    assert call.type == "function"
    assert call.id
    if want_name:
        assert call.function.name == want_name
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, SCHEMA_OF[call.function.name])
    return call.function.name, args


def test_forced_calls_parse_into_the_declared_schema(server):
    client = client_of(server)
    choices = ["required", {"type": "function", "function": {"name": "get_time"}},
               {"type": "function", "function": {"name": "get_weather"}}, "required"]

    def one(i):
        return client.chat.completions.create(model=SMOL_NAME, messages=ASK, tools=TOOLS, tool_choice=choices[i],
                                              temperature=1.0, seed=100 + i, max_tokens=MAX_TOKENS)
    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(len(choices))))
    for choice, r in zip(choices, results):
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", (choice, c)
        assert len(c.message.tool_calls) == 1
        want = choice["function"]["name"] if isinstance(choice, dict) else None
        check_call(c.message.tool_calls[0], want)


def test_streamed_call_reassembles_to_the_unstreamed_one(server):
    client = client_of(server)
    kw = dict(model=SMOL_NAME, messages=ASK, tools=TOOLS, tool_choice="required", temperature=1.0, seed=7,
              max_tokens=MAX_TOKENS)
    with cf.ThreadPoolExecutor(2) as pool:
        fw = pool.submit(lambda: client.chat.completions.create(**kw).choices[0])
        chunks = list(client.chat.completions.create(stream=True, **kw))
        whole = fw.result()
    calls, finish = {}, None
    for chunk in chunks:
        for ch in chunk.choices:
            for d in ch.delta.tool_calls or []:
                c = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                if d.id:
                    c["id"] = d.id
                if d.function and d.function.name:
                    c["name"] += d.function.name
                if d.function and d.function.arguments:
                    c["arguments"] += d.function.arguments
            finish = ch.finish_reason or finish
    assert finish == "tool_calls" == whole.finish_reason
    assert len(calls) == len(whole.message.tool_calls) == 1
    assert calls[0]["id"]
    assert calls[0]["name"] == whole.message.tool_calls[0].function.name
    assert json.loads(calls[0]["arguments"]) == json.loads(whole.message.tool_calls[0].function.arguments)


def test_tool_result_goes_back_through_the_template(server):
    client = client_of(server)
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "c"})}}
    msgs = ASK + [{"role": "assistant", "content": None, "tool_calls": [call]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"}]

    def one(i):
        if i == 0:  # auto: the generic format keeps the reply parseable, a call or a plain answer
            return client.chat.completions.create(model=SMOL_NAME, messages=ASK, tools=TOOLS, tool_choice="auto",
                                                  temperature=1.0, seed=3, max_tokens=MAX_TOKENS)
        if i == 1:
            return client.chat.completions.create(model=SMOL_NAME, messages=msgs, tools=TOOLS, temperature=1.0,
                                                  seed=4, max_tokens=MAX_TOKENS)
        return client.chat.completions.create(model=SMOL_NAME, messages=ASK, tools=TOOLS, max_tokens=1)
    with cf.ThreadPoolExecutor(3) as pool:
        first, r, r0 = pool.map(one, range(3))
    assert first.choices[0].finish_reason in ("tool_calls", "stop"), first
    c = r.choices[0]
    assert c.finish_reason in ("tool_calls", "stop", "length")
    assert c.message.content or c.message.tool_calls
    # The history (call + result) is in the prompt: longer than the question alone.
    assert r.usage.prompt_tokens > r0.usage.prompt_tokens + 20


def test_tool_choice_none_and_bad_requests(server):
    client = client_of(server)
    r = client.chat.completions.create(model=SMOL_NAME, messages=ASK, tools=TOOLS, tool_choice="none",
                                       temperature=0, max_tokens=8)
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason in ("stop", "length")
    url = server.url + "/v1/chat/completions"
    bad = [({"tools": [{"type": "function", "function": {"description": "x"}}]}, "tools[0].function.name"),
           ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
           ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "nope"),
           ({"tool_choice": "required"}, "no 'tools'"),
           ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
               "type": "object", "properties": {"x": {"type": "string", "pattern": "a+"}}}}}],
             "tool_choice": "required"}, "pattern"),
           ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format")]
    for extra, needle in bad:
        resp = requests.post(url, json={"messages": ASK, "max_tokens": 4, **extra}, timeout=60)
        assert resp.status_code == 400, (extra, resp.text)
        assert needle in resp.json()["error"]["message"], (needle, resp.text)


def test_ollama_tools_on_chat(server):
    client = ollama.Client(host=server.url)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                               "parameters": WEATHER}}]
    opts = {"temperature": 1.0, "seed": 1, "num_predict": MAX_TOKENS}

    def one(stream):  # keep_alive is accepted (and ignored: the model stays loaded)
        r = client.chat(model=SMOL_NAME, messages=ASK, tools=tools, stream=stream, options=opts,
                        keep_alive=0 if stream else "5m")
        return list(r) if stream else r
    with cf.ThreadPoolExecutor(2) as pool:
        whole, parts = pool.map(one, (False, True))
    calls = whole["message"].get("tool_calls") or []
    assert calls, f"the seeded request did not call the only tool: {whole}"
    for call in calls:
        assert call["function"]["name"] == "get_weather"
        assert isinstance(call["function"]["arguments"], dict)  # Ollama's shape: an object
        jsonschema.validate(call["function"]["arguments"], WEATHER)
    # Streaming: the same call (same seed) in one record before the final one.
    assert parts[-1]["done"]
    streamed = [c for p in parts for c in (p["message"].get("tool_calls") or [])]
    assert [c["function"] for c in streamed] == [c["function"] for c in calls]


# One native family in CI (the others: unit tests, and bench/tool_call_roundtrip.py for the table).
@pytest.mark.parametrize("template", ["Qwen-Qwen2.5-7B-Instruct"])
def test_native_formats_round_trip_forced_calls(template):
    path = SHARED / "templates" / f"{template}.jinja"
    if not path.exists():
        pytest.skip(f"shared chat template missing: {path} (../shared not present)")
    src = path.read_text()
    s = Server(SMOL, "-c", "2048", "--chat-template", src)
    try:
        client = client_of(s)
        r = client.chat.completions.create(model=SMOL_NAME, messages=ASK, tools=TOOLS, tool_choice="required",
                                           temperature=1.0, seed=11, max_tokens=MAX_TOKENS)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c
        check_call(c.message.tool_calls[0])
    finally:
        s.close()
