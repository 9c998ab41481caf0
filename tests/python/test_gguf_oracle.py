# GGUF oracle tests: the PyPI `gguf` package (the format's reference implementation) and our
# reader/writer must agree on every key, value and tensor byte, in both directions.
import hashlib
import json
import os
import pathlib
import subprocess

import pytest

gguf = pytest.importorskip("gguf", reason="the PyPI 'gguf' package is the GGUF oracle (pip install gguf)")
np = pytest.importorskip("numpy", reason="gguf-py needs numpy")

VT = gguf.GGUFValueType
QT = gguf.GGMLQuantizationType
TYPE_NAMES = {VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
              VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool", VT.STRING: "string", VT.ARRAY: "array",
              VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT64: "f64"}
NAME_TYPES = {v: k for k, v in TYPE_NAMES.items()}


def _tool():
    path = os.environ.get("EDGELLM_TOOL_gguf_tool")
    if not path or not os.path.exists(path):
        pytest.skip("EDGELLM_TOOL_gguf_tool not set or not built (run through ctest)")
    return path


def _cli():
    path = os.environ.get("EDGELLM_BIN")
    if not path or not os.path.exists(path):
        pytest.skip("EDGELLM_BIN not set or not built (run through ctest)")
    return path


# gguf-py's reader takes ~1.5 s per MB of vocabulary strings; the BPE vocabularies over 2 MB
# (llama-bpe, qwen2, deepseek-llm, falcon) have the same layout as gpt-2's and add ~30 s of CI time
# and no new structure. They are read too with EDGELLM_ORACLE_ALL=1.
_LARGE_SAME_LAYOUT = 2_000_000


def _shared_ggufs():
    shared = pathlib.Path(os.environ.get("EDGELLM_SHARED", pathlib.Path(__file__).parents[3] / "shared"))
    files = sorted(p for sub in ("models", "tokenizer") for p in (shared / sub).glob("*.gguf"))
    if os.environ.get("EDGELLM_ORACLE_ALL") != "1":
        files = [p for p in files if p.stat().st_size <= _LARGE_SAME_LAYOUT]
    return files


def _canon_float(x):
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


def _decode_parts(parts, i, vtype):
    """Rebuilds a value from GGUFReader's raw parts into gguf_tool's encoding."""
    vtype = VT(int(vtype))
    if vtype == VT.STRING:
        return {"type": "string", "value": bytes(parts[i + 1]).hex()}, i + 2
    if vtype == VT.ARRAY:
        elem = VT(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            item, i = _decode_parts(parts, i, elem)
            items.append(item)
        return {"type": "array", "elem_type": TYPE_NAMES[elem], "value": items}, i
    x = parts[i][0]
    if vtype == VT.BOOL:
        val = bool(x)
    elif vtype in (VT.FLOAT32, VT.FLOAT64):
        val = _canon_float(x)
    else:
        val = int(x)
    return {"type": TYPE_NAMES[vtype], "value": val}, i + 1


def _oracle_view(path):
    """What gguf-py's GGUFReader sees, in gguf_tool dump's shape."""
    r = gguf.GGUFReader(path)
    meta = []
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue
        # parts: key length, key bytes, value type, then the value's own parts.
        value, end = _decode_parts(field.parts, 3, field.parts[2][0])
        assert end == len(field.parts)
        meta.append({"key": name, "value": value})
    tensors = []
    for t in r.tensors:
        raw = np.ascontiguousarray(t.data).view(np.uint8).tobytes()
        tensors.append({"name": t.name, "type": QT(t.tensor_type).name, "shape": [int(d) for d in t.shape],
                        "offset": int(t.data_offset) - int(r.data_offset), "size_bytes": int(t.n_bytes),
                        "sha256": hashlib.sha256(raw).hexdigest()})
    return {"alignment": int(r.alignment), "data_offset": int(r.data_offset), "metadata": meta, "tensors": tensors}


def _ours(path):
    out = subprocess.run([_tool(), "dump", str(path)], check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    for m in d["metadata"]:
        _canon_json_floats(m["value"])
    return d


def _canon_json_floats(v):
    if v["type"] in ("f32", "f64"):
        v["value"] = _canon_float(v["value"]) if not isinstance(v["value"], str) else v["value"]
    elif v["type"] == "array":
        for item in v["value"]:
            _canon_json_floats(item)


def _assert_same(ours, oracle):
    assert ours["alignment"] == oracle["alignment"]
    assert ours["data_offset"] == oracle["data_offset"]
    assert [m["key"] for m in ours["metadata"]] == [m["key"] for m in oracle["metadata"]]
    for a, b in zip(ours["metadata"], oracle["metadata"]):
        assert a == b, a["key"]
    assert ours["tensors"] == oracle["tensors"]


def _random_bytes(rng, n):
    return rng.integers(0, 256, size=n, dtype=np.uint8)


def _write_with_gguf_py(path, alignment=None):
    """A file with every value type, string/nested arrays and plain + quantized tensors."""
    rng = np.random.default_rng(7)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_architecture()
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float32("t.f32", 0.1)
    w.add_float64("t.f64", 1e-300)
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.string", "héllo\nwörld ▁ 日本")
    w.add_array("t.strings", ["<unk>", "<s>", "</s>", "▁the", "", "\u0120x"])
    w.add_key_value("t.i8s", [1, -2, 3], VT.ARRAY, VT.INT8)
    w.add_key_value("t.u64s", [0, 2**64 - 1], VT.ARRAY, VT.UINT64)
    w.add_key_value("t.f32s", [0.5, -1.25, 3.0e38], VT.ARRAY, VT.FLOAT32)
    w.add_key_value("t.bools", [True, False, True], VT.ARRAY, VT.BOOL)
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_tensor("f32", rng.standard_normal((5, 3)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((17,)).astype(np.float16))
    w.add_tensor("i32", rng.integers(-5, 5, size=(2, 7)).astype(np.int32))
    for name, qt, rows, cols in (("q4_0", QT.Q4_0, 3, 64), ("q8_0", QT.Q8_0, 1, 96),
                                 ("q4_k", QT.Q4_K, 2, 256), ("q6_k", QT.Q6_K, 3, 512)):
        block, type_size = gguf.GGML_QUANT_SIZES[qt]
        raw = _random_bytes(rng, rows * cols // block * type_size).reshape(rows, cols // block * type_size)
        w.add_tensor(name, raw, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(params=[None, 64], ids=["align32", "align64"])
def gguf_py_file(tmp_path, request):
    path = tmp_path / "oracle.gguf"
    _write_with_gguf_py(path, request.param)
    return path


def test_we_read_what_gguf_py_wrote(gguf_py_file):
    _assert_same(_ours(gguf_py_file), _oracle_view(gguf_py_file))


def test_rewrite_of_gguf_py_file_is_byte_exact(gguf_py_file, tmp_path):
    out = tmp_path / "rewritten.gguf"
    subprocess.run([_tool(), "rewrite", str(gguf_py_file), str(out)], check=True)
    assert out.read_bytes() == gguf_py_file.read_bytes()


def test_inspect_json_reports_every_key_and_tensor(gguf_py_file):
    out = subprocess.run([_cli(), "inspect", "--json", "--tensors", "--full", str(gguf_py_file)],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    oracle = _oracle_view(gguf_py_file)
    r = gguf.GGUFReader(gguf_py_file)
    assert [m["key"] for m in j["metadata"]] == [m["key"] for m in oracle["metadata"]]
    for m in j["metadata"]:
        field = r.fields[m["key"]]
        if field.types[0] == VT.STRING:
            assert m["value"] == field.contents()
        elif field.types[0] == VT.ARRAY and field.types[-1] == VT.STRING:
            assert m["value"] == field.contents()
        elif field.types[0] in (VT.FLOAT32, VT.FLOAT64):
            assert m["value"] == pytest.approx(float(field.contents()), rel=0, abs=0)
        elif field.types[0] != VT.ARRAY:
            assert m["value"] == field.contents(), m["key"]
        assert m["type"].split("[")[0] == TYPE_NAMES[field.types[0]]
    assert [(t["name"], t["type"], t["shape"], t["offset"], t["size_bytes"]) for t in j["tensors"]] == \
        [(t["name"], t["type"], t["shape"], t["offset"], t["size_bytes"]) for t in oracle["tensors"]]
    assert j["n_tensors"] == 7
    assert j["n_params"] == sum(int(np.prod(t["shape"])) for t in oracle["tensors"])
    assert j["architecture"] == "llama"


def _spec_value(vtype, val, elem=None):
    if vtype == "string":
        return {"type": "string", "value": val.encode("utf-8").hex()}
    if vtype == "array":
        return {"type": "array", "elem_type": elem, "value": val}
    return {"type": vtype, "value": val}


def test_gguf_py_reads_what_we_wrote_and_bytes_match_its_writer(tmp_path):
    rng = np.random.default_rng(11)
    f32_data = rng.standard_normal((5, 3)).astype(np.float32)
    q4k = _random_bytes(rng, 2 * 144)
    q8 = _random_bytes(rng, 3 * 34)
    metadata = [
        ("general.architecture", _spec_value("string", "llama")),
        ("t.u8", _spec_value("u8", 255)), ("t.i8", _spec_value("i8", -128)),
        ("t.u16", _spec_value("u16", 65535)), ("t.i16", _spec_value("i16", -1)),
        ("t.u32", _spec_value("u32", 123456789)), ("t.i32", _spec_value("i32", -5)),
        ("t.u64", _spec_value("u64", 2**64 - 1)), ("t.i64", _spec_value("i64", -(2**63))),
        ("t.f32", _spec_value("f32", float(np.float32(0.1)))), ("t.f64", _spec_value("f64", 2.5e-308)),
        ("t.bool", _spec_value("bool", True)),
        ("t.string", _spec_value("string", "Ωmega ▁x\ttab")),
        ("t.strings", _spec_value("array", [_spec_value("string", s) for s in ["a", "", "ü▁"]], "string")),
        ("t.i32s", _spec_value("array", [_spec_value("i32", v) for v in [3, -4, 5]], "i32")),
        ("t.nested", _spec_value("array", [_spec_value("array", [_spec_value("i32", 9)], "i32")], "array")),
    ]
    spec = {"metadata": [{"key": k, "value": v} for k, v in metadata],
            "tensors": [
                {"name": "w.f32", "type": "F32", "shape": [3, 5], "data_hex": f32_data.tobytes().hex()},
                {"name": "w.q4_k", "type": "Q4_K", "shape": [256, 2], "data_hex": q4k.tobytes().hex()},
                {"name": "w.q8_0", "type": "Q8_0", "shape": [32, 3], "data_hex": q8.tobytes().hex()},
            ]}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    ours = tmp_path / "ours.gguf"
    subprocess.run([_tool(), "write", str(spec_path), str(ours)], check=True)

    oracle = _oracle_view(ours)
    expected_meta = [{"key": k, "value": v} for k, v in metadata]
    for m in expected_meta:
        _canon_json_floats(m["value"])
    assert oracle["metadata"] == expected_meta
    r = gguf.GGUFReader(ours)
    assert [t.name for t in r.tensors] == ["w.f32", "w.q4_k", "w.q8_0"]
    np.testing.assert_array_equal(np.asarray(r.tensors[0].data).reshape(5, 3), f32_data)
    assert bytes(np.asarray(r.tensors[1].data).view(np.uint8).tobytes()) == q4k.tobytes()
    assert bytes(np.asarray(r.tensors[2].data).view(np.uint8).tobytes()) == q8.tobytes()
    assert [list(map(int, t.shape)) for t in r.tensors] == [[3, 5], [256, 2], [32, 3]]

    # gguf-py writing the same content produces the very same bytes.
    ref = tmp_path / "ref.gguf"
    w = gguf.GGUFWriter(str(ref), "llama")
    w.add_architecture()
    w.add_uint8("t.u8", 255); w.add_int8("t.i8", -128); w.add_uint16("t.u16", 65535); w.add_int16("t.i16", -1)
    w.add_uint32("t.u32", 123456789); w.add_int32("t.i32", -5); w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63)); w.add_float32("t.f32", 0.1); w.add_float64("t.f64", 2.5e-308)
    w.add_bool("t.bool", True); w.add_string("t.string", "Ωmega ▁x\ttab")
    w.add_array("t.strings", ["a", "", "ü▁"])
    w.add_key_value("t.i32s", [3, -4, 5], VT.ARRAY, VT.INT32)
    w.add_key_value("t.nested", [[9]], VT.ARRAY, VT.ARRAY)
    w.add_tensor("w.f32", f32_data)
    w.add_tensor("w.q4_k", q4k.reshape(2, 144), raw_dtype=QT.Q4_K)
    w.add_tensor("w.q8_0", q8.reshape(3, 34), raw_dtype=QT.Q8_0)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    assert ours.read_bytes() == ref.read_bytes()


@pytest.mark.parametrize("path", _shared_ggufs(), ids=lambda p: p.name)
def test_shared_files_read_the_same_as_gguf_py(path):
    _assert_same(_ours(path), _oracle_view(path))


def test_inspect_rejects_a_bad_file_with_path_and_field(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (1 << 60).to_bytes(8, "little") + bytes(8))
    p = subprocess.run([_cli(), "inspect", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.startswith(f"error: {bad}: ")
    assert "n_tensors" in p.stderr
