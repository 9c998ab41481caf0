"""JSON-lines protocol shared by edgellm's Python workers (see src/backends/python_worker_backend.cpp).

A worker module provides REQUIRED (import names, or (import name, PyPI package) pairs), versions(),
load(model, settings) and generate(request, emit) -> dict of statistics, and optionally
embed(texts) -> dict of statistics. This file runs the loop and holds what the workers share
(TokenStream); it imports nothing heavy.
"""
import importlib
import json
import sys
import time
import traceback


def _send(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def check(required, versions):
    """required: import names, or (import name, PyPI package) where the two differ. Prints which
    PyPI packages are missing, and why each import failed (a package can be installed and still
    fail to import, e.g. torch without the CUDA runtime libraries it is linked against)."""
    missing, errors = [], {}
    for entry in required:
        name, package = (entry, entry) if isinstance(entry, str) else entry
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any import failure means unavailable
            missing.append(package)
            errors[package] = f"{type(e).__name__}: {e}"
    out = {"available": not missing, "missing": missing, "errors": errors, "versions": {},
           "python": sys.executable}
    if not missing:
        try:
            out["versions"] = versions()
        except Exception as e:  # noqa: BLE001
            out["versions"] = {"error": str(e)}
    _send(out)


class TokenStream:
    """A generation's token ids as they arrive: their times (prefill = request -> first token,
    decode = first -> last token) and the text they add, emitted piece by piece. The text is the
    decode of every id so far, less what was already emitted; a piece is held back while it ends
    inside a multi-byte character (U+FFFD from a partial byte token)."""

    def __init__(self, decode, emit):
        self._decode, self._emit = decode, emit
        self.ids = []
        self._sent = ""
        self.t0 = time.perf_counter()
        self.first = self.last = None

    def push(self, token_id):
        self.last = time.perf_counter()
        self.first = self.first or self.last
        self.ids.append(int(token_id))
        self._flush(final=False)

    def finish(self):
        self._flush(final=True)

    def _flush(self, final):
        text = self._decode(self.ids)
        if (not final and text.endswith("\ufffd")) or not text.startswith(self._sent):
            return
        piece, self._sent = text[len(self._sent):], text
        if piece:
            self._emit(piece)

    def stats(self, n_prompt, prompt_ids=None):
        out = {"n_prompt_tokens": int(n_prompt), "n_gen_tokens": len(self.ids), "token_ids": self.ids}
        if prompt_ids is not None:
            out["prompt_token_ids"] = [int(t) for t in prompt_ids]
        if self.first is not None:
            out["prompt_ms"] = (self.first - self.t0) * 1000
            out["decode_ms"] = (self.last - self.first) * 1000  # the tokens after the first
            out["n_decode_tokens"] = len(self.ids) - 1
        return out


def serve(worker):
    """worker: object with load(model, settings) and generate(request, emit) methods."""
    if "--check" in sys.argv:
        check(worker.REQUIRED, worker.versions)
        return
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            op = msg.get("op")
            if op == "exit":
                return
            if op == "load":
                t0 = time.perf_counter()
                worker.load(msg.get("model", ""), msg.get("settings", {}))
                _send({"ok": True, "load_ms": (time.perf_counter() - t0) * 1000})
            elif op == "embed":
                if not hasattr(worker, "embed"):
                    raise NotImplementedError("this worker does not support embeddings")
                _send(worker.embed(msg.get("texts", [])))
            elif op == "generate":
                stats = worker.generate(msg, lambda piece: _send({"piece": piece}) if piece else None)
                out = {"done": True}
                out.update(stats or {})
                _send(out)
            else:
                _send({"error": f"unknown op {op!r}"})
        except Exception as e:  # noqa: BLE001 - report every failure to the parent
            traceback.print_exc(file=sys.stderr)
            _send({"error": f"{type(e).__name__}: {e}"})
