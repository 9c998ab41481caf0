"""`edgellm quantize` against llama.cpp's own quantizer (llama_model_quantize through
llama-cpp-python): for every mix, the output has the same tensor types and the same bytes as
llama.cpp's on a synthetic 16-layer model (per-layer rules exercised) and on stories260K (rows
that are not whole 256-blocks: llama.cpp's fallbacks). Every output loads and runs in
llama-cpp-python and in edgellm. Bad input gets a clear error and leaves no output file."""
import ctypes
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="numpy is a test dependency")
gguf = pytest.importorskip("gguf", reason="gguf (gguf-py) is a test dependency")
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is the oracle (pip install llama-cpp-python)")

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"

pytestmark = pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)")

# llama_ftype numbers of each mix.
FTYPES = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q2_k": 10,
          "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18}


def edgellm(*args, timeout=600):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def llama_quantize(src, dst, ftype):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = FTYPES[ftype]
    p.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p))
    assert rc == 0, f"llama_model_quantize failed with {rc}"


def tensors(path):
    return {t.name: (t.tensor_type.name, bytes(t.data.tobytes())) for t in gguf.GGUFReader(str(path)).tensors}


@pytest.fixture(scope="module")
def synth16(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "t16-f32.gguf"
    r = edgellm("synth", "--shape", "tiny", "--n-layer", "16", "--type", "f32", "-q", "-o", str(path))
    assert r.returncode == 0, r.stderr
    return path


def check_same_as_llama_cpp(src, ftype, tmp_path):
    ours, ref = tmp_path / f"ours-{ftype}.gguf", tmp_path / f"ref-{ftype}.gguf"
    r = edgellm("quantize", str(src), str(ours), ftype, "-t", "2", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["file_type"] == FTYPES[ftype]
    llama_quantize(src, ref, ftype)
    a, b = tensors(ours), tensors(ref)
    assert sorted(a) == sorted(b)
    wrong_type = {n: (a[n][0], b[n][0]) for n in a if a[n][0] != b[n][0]}
    assert not wrong_type, f"tensor types differ from llama.cpp's: {wrong_type}"
    differ = [n for n in a if a[n][1] != b[n][1]]
    assert not differ, f"{len(differ)} tensors differ in bytes from llama.cpp's, e.g. {differ[:3]}"
    # Metadata copied, file type set.
    meta = gguf.GGUFReader(str(ours))
    src_keys = {k for k in gguf.GGUFReader(str(src)).fields}
    assert src_keys <= set(meta.fields) | {"general.file_type"}
    ft = meta.fields["general.file_type"]
    assert int(ft.parts[ft.data[0]][0]) == FTYPES[ftype]
    # Every metadata key and value equals llama-quantize's (the order of keys and tensors in the
    # file differs, so the files are not byte-identical; docs/quant.md says so).
    ref_meta = gguf.GGUFReader(str(ref))
    ours_kv, ref_kv = metadata_values(meta), metadata_values(ref_meta)
    assert set(ours_kv) == set(ref_kv), (set(ours_kv) ^ set(ref_kv))
    differ_kv = [k for k in ours_kv if ours_kv[k] != ref_kv[k]]
    assert not differ_kv, f"metadata values differ from llama-quantize's: {differ_kv[:5]}"
    return ours


def metadata_values(reader):
    """key -> (value types, raw bytes of the value parts), GGUF header fields left out."""
    out = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        out[name] = (tuple(f.types), b"".join(bytes(f.parts[i]) for i in f.data))
    return out


@pytest.mark.parametrize("ftype", sorted(set(FTYPES) - {"f32"}))
def test_every_mix_equals_llama_cpp_and_loads(ftype, synth16, tmp_path):
    out = check_same_as_llama_cpp(synth16, ftype, tmp_path)
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    toks = llm.tokenize(b"Once upon a time", add_bos=True)
    llm.eval(toks)
    assert np.isfinite(np.asarray(llm.scores[len(toks) - 1])).all()
    r = edgellm("run", "-m", str(out), "-p", "Once upon a time", "-n", "4", "--temp", "0", "-t", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_gen"] >= 1


@pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} is missing (the shared/ folder is not beside the project)")
@pytest.mark.parametrize("ftype", ["q2_k", "q3_k_m", "q4_k_m", "q5_k_s", "q6_k", "q4_0", "q8_0"])
def test_row_fallbacks_equal_llama_cpp_on_stories260k(ftype, tmp_path):
    # n_embd 64: no row is a whole 256-block, so every k-quant falls back as in llama.cpp.
    out = check_same_as_llama_cpp(STORIES, ftype, tmp_path)
    r = edgellm("run", "-m", str(out), "-p", "Once upon a time", "-n", "8", "--temp", "0", "-t", "2")
    assert r.returncode == 0, r.stderr


def test_dry_run_lists_the_plan_and_writes_nothing(synth16, tmp_path):
    out = tmp_path / "never.gguf"
    r = edgellm("quantize", str(synth16), str(out), "q4_k_m", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "output.weight" in r.stdout and "Q6_K" in r.stdout and "blk.0.ffn_down.weight" in r.stdout
    assert not out.exists()


def no_output_left(tmp_path):
    return [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == []


def test_bad_input_gets_clear_errors_and_no_output(synth16, tmp_path):
    out = tmp_path / "out.gguf"
    r = edgellm("quantize", str(synth16), str(out), "q9_z")
    assert r.returncode != 0 and "unknown weight type 'q9_z'" in r.stderr and "q4_k_m" in r.stderr
    r = edgellm("quantize", str(tmp_path / "missing.gguf"), str(out), "q4_0")
    assert r.returncode != 0 and "missing.gguf" in r.stderr
    r = edgellm("quantize", str(synth16), str(synth16), "q4_0")
    assert r.returncode != 0 and "overwrite the input" in r.stderr
    r = edgellm("quantize", str(synth16), str(out), "q4_0", "--imatrix", str(synth16))
    assert r.returncode != 0 and "--imatrix is not implemented" in r.stderr
    # A truncated file.
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(synth16.read_bytes()[: 200000])
    r = edgellm("quantize", str(trunc), str(out), "q4_0")
    assert r.returncode != 0 and "error" in r.stderr.lower() and "Traceback" not in r.stderr
    assert no_output_left(tmp_path)


def test_requantizing_needs_the_flag(synth16, tmp_path):
    q8 = tmp_path / "q8.gguf"
    assert edgellm("quantize", str(synth16), str(q8), "q8_0", "-q").returncode == 0
    out = tmp_path / "out.gguf"
    r = edgellm("quantize", str(q8), str(out), "q4_0")
    assert r.returncode != 0 and "already Q8_0" in r.stderr and "--allow-requantize" in r.stderr
    assert not out.exists()
    r = edgellm("quantize", str(q8), str(out), "q4_0", "--allow-requantize", "-q")
    assert r.returncode == 0, r.stderr
    assert {t for t, _ in tensors(out).values()} == {"Q4_0", "Q6_K", "F32"}


def test_non_finite_weight_is_named_and_leaves_no_file(tmp_path):
    src = tmp_path / "nan.gguf"
    w = gguf.GGUFWriter(str(src), "llama")
    w.add_block_count(1)
    a = np.ones((8, 256), dtype=np.float32)
    a[3, 17] = np.nan
    w.add_tensor("blk.0.attn_q.weight", a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "out.gguf"
    r = edgellm("quantize", str(src), str(out), "q4_0")
    assert r.returncode != 0
    assert "blk.0.attn_q.weight row 3" in r.stderr, r.stderr
    assert no_output_left(tmp_path)
