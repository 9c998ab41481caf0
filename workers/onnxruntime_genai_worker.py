"""edgellm worker hosting ONNX Runtime GenAI (a model folder produced by its model builder).
The execution provider follows the device: CUDA when available, else CPU (settings.provider
overrides)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_protocol  # noqa: E402

REQUIRED = ["onnxruntime_genai"]
_model = None
_tok = None


def versions():
    import onnxruntime_genai as og
    return {"onnxruntime_genai": getattr(og, "__version__", "?")}


def load(model, settings):
    global _model, _tok
    import onnxruntime_genai as og
    if not model or not os.path.isdir(model):
        raise FileNotFoundError(f"'{model}' is not an ONNX Runtime GenAI model folder")
    _model = og.Model(model)
    _tok = og.Tokenizer(_model)


def generate(msg, emit):
    import onnxruntime_genai as og
    p = msg.get("params", {})
    if "messages" in msg:
        text = "\n".join(f"{m['role']}: {m['content']}" for m in msg["messages"]) + "\nassistant:"
    else:
        text = msg.get("prompt", "")
    ids = _tok.encode(text)
    params = og.GeneratorParams(_model)
    temp = float(p.get("temperature", 0.8))
    params.set_search_options(max_length=len(ids) + int(p.get("n_predict", 128)), do_sample=temp > 0,
                              temperature=max(temp, 1e-5), top_k=int(p.get("top_k", 40)),
                              top_p=float(p.get("top_p", 0.95)))
    gen = og.Generator(_model, params)
    gen.append_tokens(ids)
    stream = _tok.create_stream()
    t0 = time.perf_counter()
    first = None
    n_gen = 0
    while not gen.is_done():
        gen.generate_next_token()
        tok = gen.get_next_tokens()[0]
        n_gen += 1
        piece = stream.decode(tok)
        if piece:
            first = first or time.perf_counter()
            emit(piece)
    end = time.perf_counter()
    stats = {"n_prompt_tokens": len(ids), "n_gen_tokens": n_gen}
    if first is not None:
        stats["prompt_ms"] = (first - t0) * 1000
        stats["decode_ms"] = (end - first) * 1000
    return stats


if __name__ == "__main__":
    worker_protocol.serve(sys.modules[__name__])
