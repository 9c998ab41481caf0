"""edgellm worker hosting ONNX Runtime GenAI (a model folder produced by its model builder:
genai_config.json, model.onnx, tokenizer files). The execution provider is the one the folder was
built for (`-e cpu|cuda|...` of the builder)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_protocol  # noqa: E402

REQUIRED = [("onnxruntime_genai", "onnxruntime-genai")]
_model = None
_tok = None
_bos = None  # the BOS id to put first when the folder's tokenizer wants one (see load)
_context = 0


def versions():
    import onnxruntime_genai as og
    return {"onnxruntime_genai": getattr(og, "__version__", "?")}


def check_folder(model):
    if not model:
        raise ValueError("no model given: pass an ONNX Runtime GenAI model folder (genai_config.json, model.onnx)")
    if os.path.isfile(model) and model.endswith(".gguf"):
        raise ValueError(f"'{model}' is a GGUF file: the onnxruntime_genai backend reads a model folder built by "
                         "`python3 -m onnxruntime_genai.models.builder -i HF_FOLDER -o OUT -p fp32 -e cpu`; "
                         "GGUF files run on --backend native")
    if not os.path.isdir(model):
        raise FileNotFoundError(f"model folder '{model}' does not exist")
    if not os.path.exists(os.path.join(model, "genai_config.json")):
        hint = (" (it is a Hugging Face folder: build the ONNX model from it with `python3 -m "
                "onnxruntime_genai.models.builder -i FOLDER -o OUT -p fp32 -e cpu`)"
                if os.path.exists(os.path.join(model, "config.json")) else "")
        raise FileNotFoundError(f"'{model}' is not an ONNX Runtime GenAI model folder: it has no genai_config.json{hint}")


def wanted_bos(model, config):
    """ONNX Runtime GenAI's tokenizer does not apply tokenizer.json's TemplateProcessing
    post-processor (the one that puts BOS first in Llama 3 folders), so the BOS that Transformers'
    tokenizer adds would be missing: read that rule from the folder and apply it here."""
    bos = config.get("model", {}).get("bos_token_id")
    try:
        with open(os.path.join(model, "tokenizer.json"), encoding="utf-8") as f:
            post = json.load(f).get("post_processor") or {}
    except (OSError, ValueError):
        return None
    procs = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for pp in procs:
        if pp.get("type") == "TemplateProcessing":
            first = (pp.get("single") or [{}])[0]
            if "SpecialToken" in first:
                ids = pp.get("special_tokens", {}).get(first["SpecialToken"]["id"], {}).get("ids", [])
                return ids[0] if ids else bos
    return None


def load(model, settings):
    global _model, _tok, _bos, _context
    check_folder(model)
    import onnxruntime_genai as og
    with open(os.path.join(model, "genai_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    _context = int(config.get("model", {}).get("context_length", 0))
    _model = og.Model(model)
    _tok = og.Tokenizer(_model)
    _bos = wanted_bos(model, config)


def generate(msg, emit):
    import onnxruntime_genai as og
    p = msg.get("params", {})
    if "messages" in msg and hasattr(_tok, "apply_chat_template"):
        text = _tok.apply_chat_template(json.dumps(msg["messages"]), add_generation_prompt=True)
    elif "messages" in msg:
        text = "\n".join(f"{m['role']}: {m['content']}" for m in msg["messages"]) + "\nassistant:"
    else:
        text = msg.get("prompt", "")
    ids = [int(t) for t in _tok.encode(text)]
    if _bos is not None and (not ids or ids[0] != _bos):
        ids.insert(0, _bos)
    n_predict = int(p.get("n_predict", 128))
    max_length = len(ids) + n_predict
    if _context and max_length > _context:
        raise ValueError(f"prompt ({len(ids)} tokens) + n_predict ({n_predict}) exceeds the model's context "
                         f"length {_context}")
    params = og.GeneratorParams(_model)
    temp = float(p.get("temperature", 0.8))
    opts = {"max_length": max_length, "do_sample": temp > 0}
    if temp > 0:
        opts.update(temperature=temp, top_k=int(p.get("top_k", 40)), top_p=float(p.get("top_p", 0.95)))
    if float(p.get("repeat_penalty", 1.0)) != 1.0:
        opts["repetition_penalty"] = float(p["repeat_penalty"])
    if "seed" in p:
        opts["random_seed"] = int(p["seed"]) % (2 ** 31)
    params.set_search_options(**opts)
    stream = worker_protocol.TokenStream(lambda t: _tok.decode(t), emit)
    gen = og.Generator(_model, params)
    gen.append_tokens(ids)
    while not gen.is_done():
        gen.generate_next_token()
        stream.push(gen.get_next_tokens()[0])
    stream.finish()
    stats = stream.stats(len(ids), ids)
    stats["finish_reason"] = "length" if len(stream.ids) >= n_predict else "stop"
    return stats


if __name__ == "__main__":
    worker_protocol.serve(sys.modules[__name__])
