"""JSON-lines protocol shared by edgellm's Python workers (see src/backends/python_worker_backend.cpp).

A worker module provides REQUIRED (import names), versions(), load(model, settings) and
generate(request, emit) -> dict of statistics, and optionally embed(texts) -> dict of statistics. This file runs the loop; it imports nothing heavy.
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
    missing = []
    for name in required:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any import failure means unavailable
            missing.append(name)
    out = {"available": not missing, "missing": missing, "versions": {}}
    if not missing:
        try:
            out["versions"] = versions()
        except Exception as e:  # noqa: BLE001
            out["versions"] = {"error": str(e)}
    _send(out)


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
