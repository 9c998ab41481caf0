"""edgellm worker hosting Hugging Face Transformers, with the seed's per-device settings:
device_map="auto" and float16 on CUDA, float32 on CPU, 8-bit loading when bitsandbytes is present
and settings.load_in_8bit is "1". The model is a Hugging Face folder (config.json, weights,
tokenizer files), as written by save_pretrained."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_protocol  # noqa: E402

REQUIRED = ["torch", "transformers"]
_model = None
_tok = None


def versions():
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def check_folder(model):
    """A clear error for what is not a Hugging Face model folder (before transformers, whose own
    message for a missing local folder is about the Hub)."""
    if not model:
        raise ValueError("no model given: pass a Hugging Face model folder (config.json, weights, tokenizer)")
    if os.path.isfile(model) and model.endswith(".gguf"):
        raise ValueError(f"'{model}' is a GGUF file: the transformers backend reads a Hugging Face model folder "
                         "(config.json, model.safetensors, tokenizer.json); GGUF files run on --backend native")
    if not os.path.isdir(model):
        raise FileNotFoundError(f"model folder '{model}' does not exist")
    if not os.path.exists(os.path.join(model, "config.json")):
        raise FileNotFoundError(f"'{model}' is not a Hugging Face model folder: it has no config.json "
                                "(write one with save_pretrained)")


def load(model, settings):
    global _model, _tok
    check_folder(model)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    kw = {}
    if torch.cuda.is_available():
        kw["device_map"] = settings.get("device_map", "auto")
        kw["dtype"] = torch.float16
    else:
        kw["dtype"] = torch.float32
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


class _Streamer:
    """transformers' streamer interface: put() gets the prompt first, then each new token."""

    def __init__(self, stream):
        self.stream, self.prompt_seen = stream, False

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for t in value.reshape(-1).tolist():
            self.stream.push(t)

    def end(self):
        self.stream.finish()


def generate(msg, emit):
    import torch
    p = msg.get("params", {})
    templated = "messages" in msg and bool(getattr(_tok, "chat_template", None))
    if templated:
        text = _tok.apply_chat_template(msg["messages"], tokenize=False, add_generation_prompt=True)
    elif "messages" in msg:
        text = "\n".join(f"{m['role']}: {m['content']}" for m in msg["messages"]) + "\nassistant:"
    else:
        text = msg.get("prompt", "")
    # The chat template writes the BOS itself: tokenizing its text must not add a second one.
    inputs = _tok(text, return_tensors="pt", add_special_tokens=not templated).to(_model.device)
    prompt_ids = inputs["input_ids"][0].tolist()
    if "seed" in p:
        torch.manual_seed(int(p["seed"]))
    temp = float(p.get("temperature", 0.8))
    n_predict = int(p.get("n_predict", 128))
    gen_kw = {"max_new_tokens": n_predict, "do_sample": temp > 0, "pad_token_id": _tok.eos_token_id}
    if temp > 0:
        gen_kw.update(temperature=temp, top_k=int(p.get("top_k", 40)), top_p=float(p.get("top_p", 0.95)))
        if float(p.get("min_p", 0)) > 0:
            gen_kw["min_p"] = float(p["min_p"])
    else:  # greedy: the model's generation_config must not turn sampling back on
        gen_kw.update(temperature=None, top_k=None, top_p=None)
    if float(p.get("repeat_penalty", 1.0)) != 1.0:
        gen_kw["repetition_penalty"] = float(p["repeat_penalty"])
    stream = worker_protocol.TokenStream(lambda ids: _tok.decode(ids, skip_special_tokens=True), emit)
    with torch.no_grad():
        _model.generate(**inputs, streamer=_Streamer(stream), **gen_kw)
    stats = stream.stats(len(prompt_ids), prompt_ids)
    stats["finish_reason"] = "length" if len(stream.ids) >= n_predict else "stop"
    if torch.cuda.is_available():
        stats["gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    return stats


if __name__ == "__main__":
    worker_protocol.serve(sys.modules[__name__])
