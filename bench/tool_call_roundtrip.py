#!/usr/bin/env python3
"""Tool-call round trips through `edgellm serve` for every template family that declares tools in
shared/templates, plus the models' own templates (generic format): per family, R requests with
tool_choice "required" and R with a named function (temperature 1.0, seeds 1..R), each checked:
the reply parses into tool_calls (finish_reason "tool_calls") whose arguments validate against the
declared schema (jsonschema); then R requests with tool_choice auto, counted as a call, a plain
answer (finish "stop") or cut by max_tokens. Prints a markdown table. Not a CI test (a server per family).

The native-format families run on SmolLM2-135M-Instruct with the family's template given by
--chat-template (SmolLM2 does not know those formats: the grammar, the rendering and the parser
are what is checked, not the model's skill); Gemma-3 and SmolLM2 with their own templates use the
generic format.

  EDGELLM_BIN=build/bin/edgellm python3 bench/tool_call_roundtrip.py [--repeats 3]
"""
import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "python"))
import real_models  # noqa: E402
from net_util import Server  # noqa: E402

import jsonschema  # noqa: E402
import openai  # noqa: E402

SHARED = Path(os.environ.get("EDGELLM_SHARED", HERE.parent.parent / "shared"))
WEATHER = {"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 20, "description": "the city"},
    "unit": {"type": "string", "enum": ["c", "f"], "description": "the unit"}}, "required": ["city", "unit"]}
TIME = {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 10, "description": "time zone"}},
        "required": ["tz"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "description": "Local time in a time zone",
                                           "parameters": TIME}}]
SCHEMA = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]
TEMPLATES = ["Qwen-Qwen2.5-7B-Instruct", "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
             "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct", "mistralai-mistral-common-v3_spm",
             "meetkai-functionary-medium-v3.1", "llama-cpp-deepseek-r1", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B",
             "CohereForAI-c4ai-command-r-plus-tool_use"]


def one_family(model, extra, repeats):
    s = Server(model, "-c", "4096", "--parallel", "2", *extra)
    ok, notes = 0, []
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="none")
        for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
            for seed in range(1, repeats + 1):
                r = client.chat.completions.create(model=Path(model).stem, messages=ASK, tools=TOOLS, tool_choice=choice,
                                                   temperature=1.0, seed=seed, max_tokens=200)
                c = r.choices[0]
                try:
                    assert c.finish_reason == "tool_calls", f"finish {c.finish_reason}: {c.message.content!r}"
                    call = c.message.tool_calls[0].function
                    if isinstance(choice, dict):
                        assert call.name == "get_time", call.name
                    jsonschema.validate(json.loads(call.arguments), SCHEMA[call.name])
                    ok += 1
                except (AssertionError, jsonschema.ValidationError, json.JSONDecodeError, TypeError) as e:
                    notes.append(str(e)[:80].replace("|", "/").replace("\n", " "))
                    print(f"  {choice}: {e}", file=sys.stderr)
        # tool_choice auto: what the model chooses (a call, a plain answer, or unparsed text).
        auto = {"call": 0, "answer": 0, "other": 0}
        for seed in range(1, repeats + 1):
            c = client.chat.completions.create(model=Path(model).stem, messages=ASK, tools=TOOLS, temperature=1.0,
                                               seed=seed, max_tokens=200).choices[0]
            if c.finish_reason == "tool_calls":
                auto["call"] += 1
            elif c.finish_reason == "stop":
                auto["answer"] += 1
            else:
                auto["other"] += 1
    finally:
        s.close()
    return ok, 2 * repeats, notes, auto


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    smol, gemma = real_models.path("smollm2"), real_models.path("gemma3")
    rows = []
    for t in TEMPLATES:
        src = (SHARED / "templates" / f"{t}.jinja").read_text()
        rows.append((t, "SmolLM2-135M-Instruct Q4_1", *one_family(smol, ["--chat-template", src], a.repeats)))
    rows.append(("own ChatML (generic)", "SmolLM2-135M-Instruct Q4_1", *one_family(smol, [], a.repeats)))
    if gemma.exists():
        rows.append(("own Gemma 3 (generic)", "gemma-3-270m Q4_K_M", *one_family(gemma, [], a.repeats)))
    print("| template | model | forced (required + named): parsed + schema-valid | failures "
          "| auto: call / answer / cut |\n|---|---|---|---|---|")
    for t, m, ok, n, notes, auto in rows:
        print(f"| {t} | {m} | {ok}/{n} | {'; '.join(notes) or '-'} | {auto['call']} / {auto['answer']} / {auto['other']} |")


if __name__ == "__main__":
    main()
