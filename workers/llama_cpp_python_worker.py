"""edgellm worker hosting llama-cpp-python (GGUF models through llama.cpp's Python bindings)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_protocol  # noqa: E402

REQUIRED = [("llama_cpp", "llama-cpp-python")]
_llm = None


def versions():
    import llama_cpp
    return {"llama_cpp_python": llama_cpp.__version__}


def load(model, settings):
    global _llm
    from llama_cpp import Llama
    if not model or not os.path.exists(model):
        raise FileNotFoundError(f"model file '{model}' does not exist")
    kw = {"model_path": model, "verbose": False}
    if settings.get("n_ctx", 0) > 0:
        kw["n_ctx"] = settings["n_ctx"]
    if settings.get("n_threads", 0) > 0:
        kw["n_threads"] = settings["n_threads"]
    if settings.get("n_batch", 0) > 0:
        kw["n_batch"] = settings["n_batch"]
    if settings.get("n_gpu_layers", -1) >= 0:
        kw["n_gpu_layers"] = settings["n_gpu_layers"]
    if settings.get("embedding") == "1":
        # Embeddings: n_batch tokens per llama_decode (default 512: llama.cpp masks an encoder's
        # attention over the whole ubatch, so larger ones cost it quadratically more), the context
        # as large (one sequence per input must fit a batch).
        n = settings.get("n_batch", 0) if settings.get("n_batch", 0) > 0 else 512
        kw.update(embedding=True, n_batch=n, n_ubatch=n, n_ctx=max(n, settings.get("n_ctx", 0)))
    _llm = Llama(**kw)


def embed(texts):
    """Llama.embed(list) (tokenises, batches up to n_batch tokens per decode, pools, normalises),
    timed; the token count is taken before, outside the timing."""
    n_tok = sum(len(_llm.tokenize(t.encode("utf-8"))) for t in texts)
    t0 = time.perf_counter()
    vecs = _llm.embed(texts)
    ms = (time.perf_counter() - t0) * 1000
    return {"n_inputs": len(vecs), "n_tokens": n_tok, "n_embd": len(vecs[0]) if vecs else 0, "ms": ms}


def generate(msg, emit):
    p = msg.get("params", {})
    kw = {"max_tokens": p.get("n_predict", 128), "temperature": p.get("temperature", 0.8),
          "top_k": p.get("top_k", 40), "top_p": p.get("top_p", 0.95), "min_p": p.get("min_p", 0.05),
          "repeat_penalty": p.get("repeat_penalty", 1.0), "stream": True}
    if "seed" in p:
        kw["seed"] = p["seed"]
    if p.get("stop"):
        kw["stop"] = p["stop"]
    t0 = time.perf_counter()
    first = None
    n_gen = 0
    finish = "stop"
    if "messages" in msg:
        stream = _llm.create_chat_completion(messages=msg["messages"], **kw)
        n_prompt = None
        for chunk in stream:
            ch = chunk["choices"][0]
            piece = ch.get("delta", {}).get("content") or ""
            if piece:
                first = first or time.perf_counter()
                n_gen += 1
                emit(piece)
            finish = ch.get("finish_reason") or finish
    else:
        n_prompt = len(_llm.tokenize(msg.get("prompt", "").encode("utf-8"), add_bos=True))
        for chunk in _llm.create_completion(msg.get("prompt", ""), **kw):
            ch = chunk["choices"][0]
            piece = ch.get("text") or ""
            if piece:
                first = first or time.perf_counter()
                n_gen += 1
                emit(piece)
            finish = ch.get("finish_reason") or finish
    end = time.perf_counter()
    out = {"n_gen_tokens": n_gen, "finish_reason": finish}
    if n_prompt is not None:
        out["n_prompt_tokens"] = n_prompt
    if first is not None:
        out["prompt_ms"] = (first - t0) * 1000
        out["decode_ms"] = (end - first) * 1000
    return out


if __name__ == "__main__":
    worker_protocol.serve(sys.modules[__name__])
