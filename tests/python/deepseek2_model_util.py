"""Writes random-weight `deepseek2` GGUFs (DeepSeek-V2 / V2-Lite / V3 layouts: Multi-head Latent
Attention and a Mixture-of-Experts FFN) with gguf-py, for the llama.cpp oracle tests.

Two attention layouts, as llama.cpp loads them:
- "mla": what today's convert_hf_to_gguf.py writes: attn_kv_b split into attn_k_b / attn_v_b,
  attention.key_length = kv_lora_rank + rope dim and value_length = kv_lora_rank (the MQA view of
  MLA), head_count_kv 1, and the per-head sizes in attention.key_length_mla / value_length_mla;
- "kv_b": older GGUFs: one attn_kv_b, key_length = qk_nope + qk_rope, value_length = v_head.

`qtype` ("q8_0" / "q4_0", gguf-py's quantizers) stores every matrix and expert stack in that type
(norms and the selection bias stay F32). `router_block` reserves the last 32 residual dims for the
router so its choice cannot hinge on rounding (see write_deepseek2).
"""
import os

import numpy as np

SHARED = os.environ.get("EDGELLM_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
VOCAB_SOURCE = os.path.join(SHARED, "models/stories260K.gguf")  # a 512-token SentencePiece vocab
ROUTER_DIMS = 32  # write_deepseek2(router_block=True): the residual dims only the routers read


def write_deepseek2(path, *, form="mla", n_embd=64, n_head=4, n_layer=3, n_dense=1, n_ff=96, q_lora=0,
                    kv_lora=32, qk_nope=16, qk_rope=8, v_head=16, n_expert=8, n_expert_used=2, n_shared=1,
                    n_ff_exp=40, weights_scale=1.0, weights_norm=False, gating="softmax", probs_bias=False,
                    n_group=0, n_group_used=0, yarn=None, tied=False, seed=0, extra_kv=None, skip_tensors=(),
                    qtype=None, router_block=False):
    """router_block: the routers read only the last ROUTER_DIMS residual dims (one 32-value block), which no
    layer writes (the rows of attn_output and every ffn_down for those dims are zero), so they hold the
    token's embedding through the whole model. Embedding and routers are built so each token scores
    two experts at 1.5..2.5 x 2 and the rest at -1..0 x 2 (before the common 1 / rms factor): a clear
    top-2 gap, and a choice that depends only on the token (see router_margins)."""
    import gguf

    rng = np.random.default_rng(seed)
    src = gguf.GGUFReader(VOCAB_SOURCE)
    n_vocab = 512
    arch = "deepseek2"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layer)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_context_length(256)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(qk_rope)
    w.add_leading_dense_block_count(n_dense)
    w.add_q_lora_rank(q_lora)  # llama.cpp requires the key (0: a plain attn_q) unless it sees a "Lite" layer count
    w.add_kv_lora_rank(kv_lora)
    if form == "mla":
        w.add_head_count_kv(1)
        w.add_key_length(kv_lora + qk_rope)
        w.add_value_length(kv_lora)
        w.add_key_length_mla(qk_nope + qk_rope)
        w.add_value_length_mla(v_head)
    else:
        w.add_head_count_kv(n_head)
        w.add_key_length(qk_nope + qk_rope)
        w.add_value_length(v_head)
    w.add_expert_count(n_expert)
    w.add_expert_used_count(n_expert_used)
    w.add_expert_shared_count(n_shared)
    w.add_expert_feed_forward_length(n_ff_exp)
    if weights_scale is not None:
        w.add_expert_weights_scale(weights_scale)
    w.add_expert_weights_norm(weights_norm)
    if gating is not None:
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID if gating == "sigmoid"
                                 else gguf.ExpertGatingFuncType.SOFTMAX)
    if n_group:
        w.add_expert_group_count(n_group)
        w.add_expert_group_used_count(n_group_used)
    if yarn:
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(yarn["factor"])
        w.add_rope_scaling_orig_ctx_len(yarn["orig_ctx"])
        if yarn.get("mscale_all_dim") is not None:
            # The converter writes 0.1 * mscale_all_dim (DeepSeek-V2-Lite: 0.0707).
            w.add_rope_scaling_yarn_log_mul(0.1 * yarn["mscale_all_dim"])
    for key, (value, vtype) in (extra_kv or {}).items():
        w.add_key_value(key, value, vtype)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        f = src.fields[key]
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), f.types[0])

    def rand(*shape, scale=None):
        return (rng.standard_normal(shape) * (scale or shape[-1] ** -0.5)).astype(np.float32)

    def vec(n, offset=1.0, scale=0.1):
        return (offset + scale * rng.standard_normal(n)).astype(np.float32)

    quant = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}.get(qtype)
    if qtype is not None and quant is None:
        raise ValueError(f"qtype {qtype}: gguf-py quantizes q8_0 and q4_0 only")

    def add(name, data):
        if name in skip_tensors:
            return
        if quant is not None and data.ndim >= 2:
            w.add_tensor(name, gguf.quants.quantize(data, quant), raw_dtype=quant)
        else:
            w.add_tensor(name, data)

    rb = slice(n_embd - ROUTER_DIMS, n_embd) if router_block else None
    if router_block:
        assert not probs_bias and not n_group and gating != "sigmoid", "router_margins assumes a plain softmax router"
        assert n_embd > ROUTER_DIMS and n_expert <= ROUTER_DIMS and n_expert_used < n_expert
        # Orthonormal expert directions in the reserved block; token t's block scores expert x as a[t, x].
        basis = np.linalg.qr(rng.standard_normal((ROUTER_DIMS, n_expert)))[0].T  # [n_expert][ROUTER_DIMS]
        a = rng.uniform(-1.0, 0.0, (n_vocab, n_expert))
        for t in range(n_vocab):
            a[t, rng.choice(n_expert, n_expert_used, replace=False)] = rng.uniform(1.5, 2.5, n_expert_used)

    def no_write(m):
        # A matrix adding to the residual: nothing reaches the reserved dims (its last axis-1 rows).
        if rb is not None:
            m[..., rb, :] = 0.0
        return m

    k_head = qk_nope + qk_rope
    embd = rand(n_vocab, n_embd, scale=1.0)
    if router_block:
        embd[:, rb] = (a @ basis).astype(np.float32)
    add("token_embd.weight", embd)
    add("output_norm.weight", vec(n_embd))
    if not tied:
        add("output.weight", rand(n_vocab, n_embd))
    for il in range(n_layer):
        p = f"blk.{il}."
        add(p + "attn_norm.weight", vec(n_embd))
        if q_lora:
            add(p + "attn_q_a.weight", rand(q_lora, n_embd))
            add(p + "attn_q_a_norm.weight", vec(q_lora))
            add(p + "attn_q_b.weight", rand(n_head * k_head, q_lora))
        else:
            add(p + "attn_q.weight", rand(n_head * k_head, n_embd))
        add(p + "attn_kv_a_mqa.weight", rand(kv_lora + qk_rope, n_embd))
        add(p + "attn_kv_a_norm.weight", vec(kv_lora))
        if form == "mla":
            add(p + "attn_k_b.weight", rand(n_head, kv_lora, qk_nope))  # ggml {qk_nope, kv_lora, n_head}
            add(p + "attn_v_b.weight", rand(n_head, v_head, kv_lora))   # ggml {kv_lora, v_head, n_head}
        else:
            add(p + "attn_kv_b.weight", rand(n_head * (qk_nope + v_head), kv_lora))
        add(p + "attn_output.weight", no_write(rand(n_embd, n_head * v_head)))
        ffn_norm = vec(n_embd)
        if router_block:
            ffn_norm[rb] = 1.0
        add(p + "ffn_norm.weight", ffn_norm)
        if il < n_dense:
            add(p + "ffn_gate.weight", rand(n_ff, n_embd))
            add(p + "ffn_up.weight", rand(n_ff, n_embd))
            add(p + "ffn_down.weight", no_write(rand(n_embd, n_ff)))
        elif router_block:
            # Expert x of this layer reads the direction of expert perm[x]: each layer routes differently.
            gate_inp = np.zeros((n_expert, n_embd), dtype=np.float32)
            gate_inp[:, rb] = 2.0 * basis[rng.permutation(n_expert)]
            add(p + "ffn_gate_inp.weight", gate_inp)
        else:
            add(p + "ffn_gate_inp.weight", rand(n_expert, n_embd, scale=1.0))  # well-separated router scores
        if il >= n_dense:
            if probs_bias:
                add(p + "exp_probs_b.bias", vec(n_expert, 0.0, 0.5))
            add(p + "ffn_gate_exps.weight", rand(n_expert, n_ff_exp, n_embd))
            add(p + "ffn_up_exps.weight", rand(n_expert, n_ff_exp, n_embd))
            add(p + "ffn_down_exps.weight", no_write(rand(n_expert, n_embd, n_ff_exp)))
            if n_shared:
                add(p + "ffn_gate_shexp.weight", rand(n_ff_exp * n_shared, n_embd))
                add(p + "ffn_up_shexp.weight", rand(n_ff_exp * n_shared, n_embd))
                add(p + "ffn_down_shexp.weight", no_write(rand(n_embd, n_ff_exp * n_shared)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def router_margins(path, ids):
    """For a router_block model: per MoE layer, the experts each token of `ids` selects, and the
    smallest margin by which the selection wins, computed from the file's (dequantized) weights alone.
    The router's input there is the token's embedding block times ffn_norm over the residual's rms, a
    positive factor common to all experts, so the scores below are the router logits up to that
    factor. An engine may round the activations to Q8_0 before the product (both do for quantized
    routers), moving each value by at most half a step (block max / 127): the margin of a chosen expert
    e over an unchosen f is s_e - s_f minus sum |W_e - W_f| * step, what two engines rounding every
    value apart by a whole step could take off it. Positive margins: both engines must choose alike."""
    import gguf

    r = gguf.GGUFReader(str(path))
    arch = "deepseek2"
    n_used = int(r.fields[f"{arch}.expert_used_count"].contents())

    def tensor(name):
        t = next(t for t in r.tensors if t.name == name)
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(data, dtype=np.float64).reshape([int(x) for x in reversed(t.shape)])

    embd = tensor("token_embd.weight")
    n_embd = embd.shape[1]
    rb = slice(n_embd - ROUTER_DIMS, n_embd)
    out = {}
    for il in range(int(r.fields[f"{arch}.block_count"].contents())):
        name = f"blk.{il}.ffn_gate_inp.weight"
        if not any(t.name == name for t in r.tensors):
            continue
        w = tensor(name)
        assert not w[:, :rb.start].any(), "the router reads only the reserved block"
        g = tensor(f"blk.{il}.ffn_norm.weight")[rb]
        chosen, margin = [], np.inf
        for tok in ids:
            x = embd[tok, rb] * g
            step = np.abs(x).max() / 127
            s = w[:, rb] @ x
            top = set(np.argsort(-s)[:n_used].tolist())
            for e in top:
                for f in set(range(len(s))) - top:
                    margin = min(margin, s[e] - s[f] - np.abs(w[e, rb] - w[f, rb]).sum() * step)
            chosen.append(sorted(top))
        out[il] = (chosen, margin)
    return out
