"""Pythonic extras: ``Model`` (a loaded GGUF), ``Session`` (a context on it) whose ``stream()``
iterates the generated text, and ``device()``."""
import json

from . import _edgellm
from ._stream import TokenStream


def device(model_path=None, n_ctx=0):
    """What ``edgellm device --json`` reports, as a dict: device, capabilities,
    recommended_settings, and with a model its facts and memory plan."""
    return json.loads(_edgellm.device_info_json(model_path, n_ctx))


class Model:
    """A GGUF model loaded once; any number of sessions can run on it."""

    def __init__(self, path, n_threads=0, progress=None):
        self._m = _edgellm.Model(path, n_threads=n_threads, progress=progress)
        self.path = path
        self.info = self._m.info()

    def tokenize(self, text, add_bos=True, special=False):
        return self._m.tokenize(text.encode("utf-8") if isinstance(text, str) else text, add_bos, special)

    def detokenize(self, tokens, special=False):
        return self._m.detokenize(list(tokens), special).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages, template=None, add_generation_prompt=True):
        return self._m.chat_apply([(m["role"], m["content"]) for m in messages], template, add_generation_prompt)

    @property
    def chat_template(self):
        """(name, Jinja2 source) of the template chat sessions use."""
        return self._m.chat_template()

    def session(self, **context_params):
        return Session(self, **context_params)


class Session:
    """A context (KV cache, threads) on a Model. ``generate`` returns the text, ``stream`` yields
    it piece by piece; ``chat`` keeps the conversation and reuses its KV between turns."""

    def __init__(self, model, **context_params):
        import threading
        self.model = model
        self._ctx = _edgellm.Context(model._m, **context_params)
        self.info = self._ctx.info()
        self._lock = threading.Lock()
        self.messages = []
        self.last_result = None

    def stream(self, prompt, max_tokens=128, **sampling):
        """Yields the text of the continuation of `prompt` (str, or token ids) as it is generated."""
        tokens = self.model.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        s = TokenStream(self._ctx, self._lock, tokens, n_predict=max_tokens, **sampling)
        for _tok, piece in s:
            if piece:
                yield piece.decode("utf-8", errors="replace")
        self.last_result = s.result

    def generate(self, prompt, max_tokens=128, **sampling):
        return "".join(self.stream(prompt, max_tokens, **sampling))

    def chat(self, content, role="user", max_tokens=256, **sampling):
        """Adds a message, streams the assistant's answer (yields text) and records it."""
        self.messages.append({"role": role, "content": content})
        tokens = self.model._m.chat_tokenize([(m["role"], m["content"]) for m in self.messages], None)
        s = TokenStream(self._ctx, self._lock, tokens, n_predict=max_tokens, keep_kv=True, **sampling)
        answer = []
        for _tok, piece in s:
            if piece:
                text = piece.decode("utf-8", errors="replace")
                answer.append(text)
                yield text
        self.last_result = s.result
        self.messages.append({"role": "assistant", "content": "".join(answer)})


def bench(model_path, prompt="Once upon a time", n_predict=64, runs=3, warmup=1, **context_params):
    """Times `runs` greedy generations of `n_predict` tokens (after `warmup` untimed ones) in this
    process and returns the per-run measures of `edgellm run --json` (n_prompt, prefill and
    decode tokens/s, ttft_ms, n_gen) plus mean/stdev/min/max of each rate. Not the CLI's whole
    `edgellm bench` report (no sweeps, no other backends): run the CLI for that."""
    import statistics

    model = Model(model_path)
    session = model.session(**context_params)
    tokens = model.tokenize(prompt)
    out = {"model": model_path, "arch": model.info["arch"], "n_threads": session.info["n_threads"],
           "n_ctx": session.info["n_ctx"], "prompt": prompt, "n_predict": n_predict, "runs": []}
    for i in range(warmup + runs):
        r = session._ctx.generate(tokens, n_predict=n_predict, temperature=0, ignore_eos=True)
        if i >= warmup:
            out["runs"].append({k: r[k] for k in ("n_prompt", "n_gen", "prefill_ms", "decode_ms", "ttft_ms",
                                                  "prefill_tokens_per_s", "decode_tokens_per_s")})
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms"):
        xs = [r[key] for r in out["runs"]]
        out[key] = {"mean": statistics.fmean(xs), "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                    "min": min(xs), "max": max(xs)}
    return out
