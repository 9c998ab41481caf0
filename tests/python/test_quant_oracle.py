"""Oracle test: edgellm's reference (de)quantizers against gguf-py's gguf.quants (PyPI `gguf`).

Random blocks (random bytes with sane f16 scales) are dequantized by both and must be bitwise
equal; random float rows are quantized by both and must give identical bytes. Every type that
gguf-py implements is compared exactly: ggml, gguf-py and edgellm evaluate the same float32
expressions in the same order (edgellm forbids FMA contraction in the reference path), so no
ulp tolerance is needed anywhere.
"""
import os
import subprocess

import pytest

np = pytest.importorskip("numpy", reason="numpy is needed for the gguf.quants oracle")
gguf = pytest.importorskip("gguf", reason="PyPI package gguf (gguf.quants) is the oracle")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import quants  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES  # noqa: E402

TOOL = os.environ.get("EDGELLM_TOOL_quant_tool")
pytestmark = pytest.mark.skipif(not TOOL, reason="EDGELLM_TOOL_quant_tool not set (run through ctest)")

# Byte offsets of the f16 scale fields inside each block (ggml layouts, see src/quant/blocks.h).
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
N_BLOCKS = [1, 3, 17, 33]


def run_tool(tmp_path, mode, type_name, data: bytes) -> bytes:
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    subprocess.run([TOOL, mode, type_name, str(src), str(dst)], check=True, capture_output=True)
    return dst.read_bytes()


def random_blocks(rng, qtype, n_blocks):
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        mag = rng.uniform(1e-3, 1.0, size=n_blocks)
        sign = rng.choice([-1.0, 1.0], size=n_blocks)
        raw[:, off:off + 2] = (mag * sign).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw


@pytest.mark.parametrize("n_blocks", N_BLOCKS)
@pytest.mark.parametrize("qtype", list(F16_FIELDS), ids=lambda t: t.name)
def test_dequantize_matches_gguf_py_bitwise(tmp_path, qtype, n_blocks):
    rng = np.random.default_rng(1000 * int(qtype) + n_blocks)
    raw = random_blocks(rng, qtype, n_blocks)
    expected = quants.dequantize(raw.reshape(1, -1), qtype).astype(np.float32).ravel()
    ours = np.frombuffer(run_tool(tmp_path, "dequant", qtype.name, raw.tobytes()), dtype=np.float32)
    assert ours.shape == expected.shape
    mismatch = np.flatnonzero(ours.view(np.uint32) != expected.view(np.uint32))
    assert mismatch.size == 0, f"{qtype.name}: {mismatch.size} elements differ, first at {mismatch[:5]}: " \
        f"ours {ours[mismatch[:5]]} vs gguf-py {expected[mismatch[:5]]}"


@pytest.mark.parametrize("n", [1, 7, 255, 1031])
@pytest.mark.parametrize("qtype", [T.F16, T.BF16], ids=lambda t: t.name)
def test_dequantize_plain_types(tmp_path, qtype, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 4, size=n)).astype(np.float32)
    raw = quants.quantize(x.reshape(1, -1), qtype)
    expected = quants.dequantize(raw, qtype).astype(np.float32).ravel()
    ours = np.frombuffer(run_tool(tmp_path, "dequant", qtype.name, raw.tobytes()), dtype=np.float32)
    assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32))


def float_rows(rng, n_blocks, block_size):
    """Rows that exercise the quantizers: normal weights over several magnitudes, an all-zero block,
    a constant block, ties for the largest magnitude (+m and -m), tiny subnormal-range values."""
    n = n_blocks * block_size
    x = rng.standard_normal(n).astype(np.float32) * np.float32(10.0 ** rng.uniform(-3, 1))
    if n_blocks >= 3:
        x[0:block_size] = 0.0
        x[block_size:2 * block_size] = np.float32(0.37)
        tie = x[2 * block_size:3 * block_size]
        tie[3], tie[9] = -1.5, 1.5
        tie[:] = np.clip(tie, -1.5, 1.5)
    if n_blocks >= 17:
        x[16 * block_size:17 * block_size] *= np.float32(1e-6)
    return x


QUANTIZABLE = [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]


@pytest.mark.parametrize("n_blocks", N_BLOCKS)
@pytest.mark.parametrize("qtype", QUANTIZABLE, ids=lambda t: t.name)
def test_quantize_matches_gguf_py_bytes(tmp_path, qtype, n_blocks):
    block_size, _ = GGML_QUANT_SIZES[qtype]
    if block_size == 1:
        block_size = 32
    rng = np.random.default_rng(77 * int(qtype) + n_blocks)
    x = float_rows(rng, n_blocks, block_size)
    expected = np.asarray(quants.quantize(x.reshape(1, -1), qtype)).view(np.uint8).ravel()
    ours = np.frombuffer(run_tool(tmp_path, "quant", qtype.name, x.tobytes()), dtype=np.uint8)
    assert ours.shape == expected.shape
    diff = np.flatnonzero(ours != expected)
    assert diff.size == 0, f"{qtype.name}: {diff.size} bytes differ, first at {diff[:8]}"


@pytest.mark.parametrize("qtype", [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K], ids=lambda t: t.name)
def test_k_quantizers_round_trip_through_gguf_py(tmp_path, qtype):
    # gguf-py has no k-quant quantizer, so check that what we write decodes (by gguf-py) close to
    # the input: relative RMS error below the format's expected bound.
    bound = {T.Q2_K: 0.45, T.Q3_K: 0.25, T.Q4_K: 0.12, T.Q5_K: 0.06, T.Q6_K: 0.03}[qtype]
    rng = np.random.default_rng(int(qtype))
    x = rng.standard_normal(256 * 9).astype(np.float32) * np.float32(0.02)
    raw = np.frombuffer(run_tool(tmp_path, "quant", qtype.name, x.tobytes()), dtype=np.uint8)
    y = quants.dequantize(raw.reshape(1, -1), qtype).ravel()
    rel = float(np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x ** 2)))
    assert rel < bound, f"{qtype.name}: relative RMS error {rel:.4f} >= {bound}"


def test_unsupported_type_is_a_clear_error(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(bytes(66))
    r = subprocess.run([TOOL, "dequant", "IQ2_XXS", str(src), str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode != 0
    assert "dequantization of IQ2_XXS not implemented" in r.stderr
