"""edgellm worker hosting Hugging Face Transformers, with the seed's per-device settings:
device_map="auto" and float16 on CUDA, float32 on CPU, 8-bit loading when bitsandbytes is present
and settings.load_in_8bit is "1"."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_protocol  # noqa: E402

REQUIRED = ["torch", "transformers"]
_model = None
_tok = None


def versions():
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def load(model, settings):
    global _model, _tok
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    kw = {}
    if torch.cuda.is_available():
        kw["device_map"] = settings.get("device_map", "auto")
        kw["torch_dtype"] = torch.float16
    else:
        kw["torch_dtype"] = torch.float32
    if settings.get("load_in_8bit") == "1":
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
            kw["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        except ImportError:
            print("bitsandbytes not installed: loading without 8-bit", file=sys.stderr)
    if settings.get("n_threads", 0) > 0:
        torch.set_num_threads(int(settings["n_threads"]))
    _tok = AutoTokenizer.from_pretrained(model)
    _model = AutoModelForCausalLM.from_pretrained(model, **kw)
    _model.eval()


def generate(msg, emit):
    import torch
    from transformers import TextIteratorStreamer
    p = msg.get("params", {})
    if "messages" in msg and getattr(_tok, "chat_template", None):
        text = _tok.apply_chat_template(msg["messages"], tokenize=False, add_generation_prompt=True)
    elif "messages" in msg:
        text = "\n".join(f"{m['role']}: {m['content']}" for m in msg["messages"]) + "\nassistant:"
    else:
        text = msg.get("prompt", "")
    inputs = _tok(text, return_tensors="pt").to(_model.device)
    n_prompt = int(inputs["input_ids"].shape[1])
    if "seed" in p:
        torch.manual_seed(int(p["seed"]))
    temp = float(p.get("temperature", 0.8))
    gen_kw = {"max_new_tokens": int(p.get("n_predict", 128)), "do_sample": temp > 0}
    if temp > 0:
        gen_kw.update(temperature=temp, top_k=int(p.get("top_k", 40)), top_p=float(p.get("top_p", 0.95)))
    streamer = TextIteratorStreamer(_tok, skip_prompt=True, skip_special_tokens=True)
    out = {}

    def run():
        with torch.no_grad():
            out["ids"] = _model.generate(**inputs, streamer=streamer, **gen_kw)

    t0 = time.perf_counter()
    th = threading.Thread(target=run)
    th.start()
    first = None
    for piece in streamer:
        if piece:
            first = first or time.perf_counter()
            emit(piece)
    th.join()
    end = time.perf_counter()
    n_gen = int(out["ids"].shape[1]) - n_prompt if "ids" in out else 0
    stats = {"n_prompt_tokens": n_prompt, "n_gen_tokens": n_gen,
             "finish_reason": "length" if n_gen >= gen_kw["max_new_tokens"] else "stop"}
    if first is not None:
        stats["prompt_ms"] = (first - t0) * 1000
        stats["decode_ms"] = (end - first) * 1000
    if torch.cuda.is_available():
        stats["gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    return stats


if __name__ == "__main__":
    worker_protocol.serve(sys.modules[__name__])
