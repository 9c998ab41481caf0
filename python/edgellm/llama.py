"""``edgellm.Llama``: the llama-cpp-python ``Llama`` surface on the edgellm engine.

Covers what the seed's code and common code use: the constructor's model/context arguments,
``__call__`` / ``create_completion`` (sampling parameters, stop strings, seed, streaming,
logprobs, echo), ``create_chat_completion`` (streaming, response_format), ``tokenize`` /
``detokenize``, ``generate`` (token ids), ``n_ctx()``. Results are the same dicts (OpenAI-style
``choices`` and ``usage``). Arguments of llama-cpp-python that have no meaning here (use_mmap,
use_mlock, rope scaling, lora ...) are accepted and ignored.
"""
import math
import sys
import threading
import time
import uuid

from . import _edgellm
from ._stream import TokenStream

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama-cpp-python's "random seed"

# llama-cpp-python chat_format names -> edgellm built-in templates.
_CHAT_FORMATS = {
    "chatml": "chatml",
    "llama-2": "llama2",
    "llama-3": "llama3",
    "mistral-instruct": "mistral",
    "gemma": "gemma",
    "zephyr": "zephyr",
}

_gpu_note_printed = False


def _gpu_layers(n_gpu_layers, n_layer):
    """The layers to ask the engine for, and whether the CPU note was printed."""
    global _gpu_note_printed
    if n_gpu_layers == 0:
        return 0
    why = _edgellm.gpu_offload_unavailable_reason()
    if why:
        if not _gpu_note_printed:
            print(f"edgellm: n_gpu_layers={n_gpu_layers} asked, but no GPU can take layers here ({why}); "
                  "running on the CPU (llm.n_gpu_layers_offloaded == 0)", file=sys.stderr)
            _gpu_note_printed = True
        return 0
    return n_layer + 1 if n_gpu_layers < 0 else n_gpu_layers


def _stop_list(stop):
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    return [s for s in stop if s]


def _message_text(content):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # OpenAI content parts: keep the text ones.
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


class Llama:
    def __init__(self, model_path, *, n_gpu_layers=0, seed=LLAMA_DEFAULT_SEED, n_ctx=512, n_batch=512,
                 n_threads=None, n_threads_batch=None, flash_attn=False, chat_format=None, verbose=True,
                 type_k=None, **kwargs):
        self.model_path = model_path
        self.verbose = verbose
        self._model = _edgellm.Model(model_path)
        info = self._model.info()
        self._info = info
        self.n_gpu_layers = n_gpu_layers
        layers = _gpu_layers(n_gpu_layers, info["n_layer"])
        if chat_format is not None and chat_format not in _CHAT_FORMATS:
            raise ValueError(f"chat_format '{chat_format}' is not supported; known: {', '.join(_CHAT_FORMATS)}")
        self.chat_format = chat_format
        self._template = _CHAT_FORMATS.get(chat_format) if chat_format else None
        self._n_threads = n_threads
        if info["is_encoder"]:
            # An embedding model (BERT-class): embed() works, generation raises (no context).
            self._ctx = None
            self.context_params = {"n_ctx": info["n_ctx_train"], "n_gpu_layers": 0}
        else:
            self._ctx = _edgellm.Context(
                self._model, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads or 0,
                n_threads_batch=n_threads_batch or 0, flash_attn="on" if flash_attn else "auto",
                n_gpu_layers=layers)
            self.context_params = self._ctx.info()
        # What really runs on the GPU: 0 on the CPU, never the number asked for.
        self.n_gpu_layers_offloaded = self.context_params["n_gpu_layers"]
        self._seed = seed
        self._lock = threading.Lock()  # one generation at a time on this context

    # ---- model facts ---------------------------------------------------------------------
    def n_ctx(self):
        return self.context_params["n_ctx"]

    def n_vocab(self):
        return self._info["n_vocab"]

    def n_embd(self):
        return self._info["n_embd"]

    def token_bos(self):
        return self._info["bos"]

    def token_eos(self):
        return self._info["eos"]

    @property
    def metadata(self):
        return {"general.architecture": self._info["arch"], "general.name": self._info["name"]}

    # ---- text ----------------------------------------------------------------------------
    def tokenize(self, text, add_bos=True, special=False):
        if isinstance(text, str):
            text = text.encode("utf-8")
        return self._model.tokenize(text, add_bos, special)

    def detokenize(self, tokens, prev_tokens=None, special=False):
        tokens = list(tokens)
        if prev_tokens:
            prev = list(prev_tokens)
            return self._model.detokenize(prev + tokens, special)[len(self._model.detokenize(prev, special)):]
        return self._model.detokenize(tokens, special)

    def _context(self):
        if self._model is None:
            raise ValueError("this Llama was closed")
        if self._ctx is None:
            raise ValueError(f"{self.model_path} is an embedding model (an encoder): it does not generate text; "
                             "use embed()")
        return self._ctx

    def embed(self, input, normalize=True, truncate=True):
        """llama-cpp-python's embed(): a list of floats for a string, a list of such lists for a list
        of strings (pooled with the model's own pooling: mean for BERT-class encoders, the last token
        for decoders). Unlike llama-cpp-python no embedding=True is needed at construction."""
        single = isinstance(input, str)
        texts = [input] if single else list(input)
        vectors = self._model.embed(texts, -1, normalize, truncate, self._n_threads or 0)
        return vectors[0] if single else vectors

    def set_seed(self, seed):
        self._seed = seed

    def reset(self):
        """Nothing to do: every completion starts from an empty KV cache."""

    def close(self):
        """Frees the context and the model now (llama-cpp-python's close())."""
        with self._lock:
            self._ctx = None
            self._model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- generation ----------------------------------------------------------------------
    def _resolve_seed(self, seed):
        if seed is not None:
            return seed & 0xFFFFFFFFFFFFFFFF
        if self._seed is not None and self._seed != LLAMA_DEFAULT_SEED and self._seed >= 0:
            return self._seed
        return None  # a fresh seed per call

    def _sampling(self, temperature, top_p, top_k, min_p, repeat_penalty, frequency_penalty, presence_penalty, seed):
        return dict(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty,
                    frequency_penalty=frequency_penalty, presence_penalty=presence_penalty,
                    seed=self._resolve_seed(seed))

    def _n_predict(self, max_tokens, n_prompt):
        room = self.n_ctx() - n_prompt
        if max_tokens is None or max_tokens <= 0:
            return max(room, 1)
        return max_tokens

    def _logprobs(self, prompt_tokens, completion_tokens, n_top):
        """llama-cpp-python's logprobs dict for the completion tokens, from one extra evaluation
        of prompt + completion (all positions' logits, log-softmax)."""
        if not completion_tokens:
            return {"tokens": [], "text_offset": [], "token_logprobs": [], "top_logprobs": []}
        seq = list(prompt_tokens) + list(completion_tokens[:-1])
        with self._lock:
            ctx = self._context()
            ctx.kv_truncate(0)
            ctx.eval(seq, True)
            rows = [ctx.logits(len(prompt_tokens) - 1 + i) for i in range(len(completion_tokens))]
            ctx.kv_truncate(0)
        out = {"tokens": [], "text_offset": [], "token_logprobs": [], "top_logprobs": []}
        offset = len(self.detokenize(prompt_tokens).decode("utf-8", errors="ignore"))  # as llama-cpp-python
        for tok, row in zip(completion_tokens, rows):
            mx = max(row)
            lse = mx + math.log(sum(math.exp(v - mx) for v in row))
            piece = self._model.token_to_piece(tok).decode("utf-8", errors="ignore")
            out["tokens"].append(piece)
            out["text_offset"].append(offset)
            offset += len(piece)
            out["token_logprobs"].append(row[tok] - lse)
            top = sorted(range(len(row)), key=lambda i: row[i], reverse=True)[:max(n_top, 1)]
            out["top_logprobs"].append(
                {self._model.token_to_piece(i).decode("utf-8", errors="ignore"): row[i] - lse for i in top})
        return out

    def _prompt_tokens(self, prompt):
        if isinstance(prompt, (list, tuple)):
            return list(prompt)
        if prompt == "":
            return [self.token_bos()]
        return self.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def create_completion(self, prompt, suffix=None, max_tokens=16, temperature=0.8, top_p=0.95, min_p=0.05,
                          typical_p=1.0, logprobs=None, echo=False, stop=None, frequency_penalty=0.0,
                          presence_penalty=0.0, repeat_penalty=1.0, top_k=40, stream=False, seed=None,
                          model=None, grammar=None, **kwargs):
        if suffix:
            raise ValueError("suffix (infill) is not supported by edgellm")
        prompt_tokens = self._prompt_tokens(prompt)
        gen = dict(n_predict=self._n_predict(max_tokens, len(prompt_tokens)), stop=_stop_list(stop),
                   grammar=grammar if isinstance(grammar, str) else None,
                   **self._sampling(temperature, top_p, top_k, min_p, repeat_penalty, frequency_penalty,
                                    presence_penalty, seed))
        cid = f"cmpl-{uuid.uuid4()}"
        created = int(time.time())
        name = model or self.model_path
        prompt_text = self.detokenize(prompt_tokens).decode("utf-8", errors="ignore") if echo else ""
        if stream:
            return self._stream_completion(prompt_tokens, gen, cid, created, name, prompt_text)
        tokens, text, res = self._run(prompt_tokens, gen)
        choice = {"text": prompt_text + text, "index": 0,
                  "logprobs": self._logprobs(prompt_tokens, tokens, logprobs) if logprobs is not None else None,
                  "finish_reason": self._finish(res)}
        return {"id": cid, "object": "text_completion", "created": created, "model": name, "choices": [choice],
                "usage": {"prompt_tokens": len(prompt_tokens), "completion_tokens": len(tokens),
                          "total_tokens": len(prompt_tokens) + len(tokens)}}

    __call__ = create_completion

    @staticmethod
    def _finish(res):
        return "length" if res["stop_reason"] in ("length", "context") else "stop"

    def _run(self, prompt_tokens, gen):
        tokens, pieces = [], []

        def on_token(tok, piece):
            if tok >= 0:
                tokens.append(tok)
            pieces.append(piece)

        with self._lock:
            res = self._context().generate(prompt_tokens, callback=on_token, **gen)
        return tokens, b"".join(pieces).decode("utf-8", errors="ignore"), res

    def _stream_completion(self, prompt_tokens, gen, cid, created, name, prompt_text):
        s = TokenStream(self._context(), self._lock, prompt_tokens, **gen)
        if prompt_text:
            yield {"id": cid, "object": "text_completion", "created": created, "model": name,
                   "choices": [{"text": prompt_text, "index": 0, "logprobs": None, "finish_reason": None}]}
        for _tok, piece in s:
            text = piece.decode("utf-8", errors="ignore")
            if text:
                yield {"id": cid, "object": "text_completion", "created": created, "model": name,
                       "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}]}
        yield {"id": cid, "object": "text_completion", "created": created, "model": name,
               "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": self._finish(s.result)}]}

    def generate(self, tokens, top_k=40, top_p=0.95, min_p=0.05, typical_p=1.0, temp=0.80, repeat_penalty=1.0,
                 reset=True, frequency_penalty=0.0, presence_penalty=0.0, seed=None, **kwargs):
        """Yields generated token ids after `tokens` (end-of-generation tokens included) until the
        caller stops or the context is full, as llama-cpp-python's Llama.generate."""
        tokens = list(tokens)
        gen = dict(n_predict=max(self.n_ctx() - len(tokens), 1), ignore_eos=True,
                   **self._sampling(temp, top_p, top_k, min_p, repeat_penalty, frequency_penalty, presence_penalty,
                                    seed))
        for tok, _piece in TokenStream(self._context(), self._lock, tokens, **gen):
            if tok >= 0:
                yield tok

    # ---- chat ----------------------------------------------------------------------------
    def chat_prompt_tokens(self, messages):
        """The prompt token ids create_chat_completion generates after."""
        msgs = [(m["role"], _message_text(m.get("content"))) for m in messages]
        return self._model.chat_tokenize(msgs, self._template)

    def create_chat_completion(self, messages, functions=None, function_call=None, tools=None, tool_choice=None,
                               temperature=0.2, top_p=0.95, top_k=40, min_p=0.05, typical_p=1.0, stream=False,
                               stop=None, seed=None, response_format=None, max_tokens=None, presence_penalty=0.0,
                               frequency_penalty=0.0, repeat_penalty=1.0, model=None, grammar=None, logprobs=None,
                               top_logprobs=None, **kwargs):
        if tools or functions:
            raise ValueError("tools / functions are not supported by edgellm.Llama yet")
        prompt_tokens = self.chat_prompt_tokens(messages)
        json_schema = None
        if response_format and response_format.get("type") == "json_object":
            import json
            json_schema = json.dumps(response_format.get("schema") or {"type": "object"})
        gen = dict(n_predict=self._n_predict(max_tokens, len(prompt_tokens)), stop=_stop_list(stop),
                   grammar=grammar if isinstance(grammar, str) else None, json_schema=json_schema,
                   **self._sampling(temperature, top_p, top_k, min_p, repeat_penalty, frequency_penalty,
                                    presence_penalty, seed))
        cid = f"chatcmpl-{uuid.uuid4()}"
        created = int(time.time())
        name = model or self.model_path
        if stream:
            return self._stream_chat(prompt_tokens, gen, cid, created, name)
        tokens, text, res = self._run(prompt_tokens, gen)
        lp = None
        if logprobs:
            raw = self._logprobs(prompt_tokens, tokens, top_logprobs or 0)
            lp = {"content": [{"token": t, "logprob": l, "bytes": None,
                               "top_logprobs": [{"token": k, "logprob": v, "bytes": None} for k, v in top.items()]}
                              for t, l, top in zip(raw["tokens"], raw["token_logprobs"], raw["top_logprobs"])]}
        return {"id": cid, "object": "chat.completion", "created": created, "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                             "finish_reason": self._finish(res)}],
                "usage": {"prompt_tokens": len(prompt_tokens), "completion_tokens": len(tokens),
                          "total_tokens": len(prompt_tokens) + len(tokens)}}

    def _stream_chat(self, prompt_tokens, gen, cid, created, name):
        def chunk(delta, finish=None):
            return {"id": cid, "model": name, "created": created, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        s = TokenStream(self._context(), self._lock, prompt_tokens, **gen)
        yield chunk({"role": "assistant"})
        for _tok, piece in s:
            text = piece.decode("utf-8", errors="ignore")
            if text:
                yield chunk({"content": text})
        yield chunk({}, self._finish(s.result))
