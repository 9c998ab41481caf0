"""Shared pytest set-up for the Python tests.

llama.cpp as a test oracle: every `llama_cpp.Llama` these tests create loads its weights without
llama.cpp's CPU "extra buffer types" (the AMX and repacked-weight layouts; `--no-repack` in
llama.cpp's own tools). llama-cpp-python builds llama.cpp with -march=native, so on a CPU with AMX
the AMX buffer type is compiled in and used for Q4_0/Q8_0 weights, and on the small and odd model
shapes these tests use it crashes llama.cpp: `GGML_ASSERT(*cur_backend_id != -1)` in
ggml_backend_sched_split_graph while creating a context, or a segfault in llama_decode. The plain
CPU layout is the same on every machine, so the oracle's logits no longer depend on which CPU
built the wheel. bench/compare_llamacpp.py (the speed comparison) keeps llama.cpp's defaults.
"""
try:
    import llama_cpp.llama_cpp as _lc
except ImportError:  # the tests that need the oracle skip with their own message
    _lc = None

if _lc is not None and hasattr(_lc.llama_model_params, "use_extra_bufts"):
    _default_model_params = _lc.llama_model_default_params

    def _model_params_without_extra_bufts():
        params = _default_model_params()
        params.use_extra_bufts = False
        return params

    # llama_cpp.Llama.__init__ reads its model parameters from this function of the module.
    _lc.llama_model_default_params = _model_params_without_extra_bufts
