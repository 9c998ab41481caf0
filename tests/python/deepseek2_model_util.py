"""Writes random-weight `deepseek2` GGUFs (DeepSeek-V2 / V2-Lite / V3 layouts: Multi-head Latent
Attention and a Mixture-of-Experts FFN) with gguf-py, for the llama.cpp oracle tests.

Two attention layouts, as llama.cpp loads them:
- "mla": what today's convert_hf_to_gguf.py writes: attn_kv_b split into attn_k_b / attn_v_b,
  attention.key_length = kv_lora_rank + rope dim and value_length = kv_lora_rank (the MQA view of
  MLA), head_count_kv 1, and the per-head sizes in attention.key_length_mla / value_length_mla;
- "kv_b": older GGUFs: one attn_kv_b, key_length = qk_nope + qk_rope, value_length = v_head.
"""
import os

import numpy as np

SHARED = os.environ.get("EDGELLM_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
VOCAB_SOURCE = os.path.join(SHARED, "models/stories260K.gguf")  # a 512-token SentencePiece vocab


def write_deepseek2(path, *, form="mla", n_embd=64, n_head=4, n_layer=3, n_dense=1, n_ff=96, q_lora=0,
                    kv_lora=32, qk_nope=16, qk_rope=8, v_head=16, n_expert=8, n_expert_used=2, n_shared=1,
                    n_ff_exp=40, weights_scale=1.0, weights_norm=False, gating="softmax", probs_bias=False,
                    n_group=0, n_group_used=0, yarn=None, tied=False, seed=0, extra_kv=None, skip_tensors=()):
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

    def add(name, data):
        if name not in skip_tensors:
            w.add_tensor(name, data)

    k_head = qk_nope + qk_rope
    add("token_embd.weight", rand(n_vocab, n_embd, scale=1.0))
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
        add(p + "attn_output.weight", rand(n_embd, n_head * v_head))
        add(p + "ffn_norm.weight", vec(n_embd))
        if il < n_dense:
            add(p + "ffn_gate.weight", rand(n_ff, n_embd))
            add(p + "ffn_up.weight", rand(n_ff, n_embd))
            add(p + "ffn_down.weight", rand(n_embd, n_ff))
        else:
            add(p + "ffn_gate_inp.weight", rand(n_expert, n_embd, scale=1.0))  # well-separated router scores
            if probs_bias:
                add(p + "exp_probs_b.bias", vec(n_expert, 0.0, 0.5))
            add(p + "ffn_gate_exps.weight", rand(n_expert, n_ff_exp, n_embd))
            add(p + "ffn_up_exps.weight", rand(n_expert, n_ff_exp, n_embd))
            add(p + "ffn_down_exps.weight", rand(n_expert, n_embd, n_ff_exp))
            if n_shared:
                add(p + "ffn_gate_shexp.weight", rand(n_ff_exp * n_shared, n_embd))
                add(p + "ffn_up_shexp.weight", rand(n_ff_exp * n_shared, n_embd))
                add(p + "ffn_down_shexp.weight", rand(n_embd, n_ff_exp * n_shared))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
