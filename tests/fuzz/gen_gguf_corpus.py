#!/usr/bin/env python3
# Generates the checked-in GGUF fuzz corpus: small files, one per defect (named by it), plus
# valid seeds; writes tests/fuzz/gguf_reader_fuzz.expected ("FILE accept|reject FIELD") which
# the unit test GgufCorpus checks. Standard library only: run `python3 tests/fuzz/gen_gguf_corpus.py`.
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus" / "gguf_reader_fuzz"
EXPECTED = HERE / "gguf_reader_fuzz.expected"

MAGIC = b"GGUF"
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
F32T, F16T, Q4_0T, Q8_0T, Q4_KT = 0, 1, 2, 8, 12


def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def i64(v): return struct.pack("<q", v)
def gstr(s): b = s.encode() if isinstance(s, str) else s; return u64(len(b)) + b
def header(n_tensors, n_kv, version=3): return MAGIC + u32(version) + u64(n_tensors) + u64(n_kv)
def kv(key, vtype, payload): return gstr(key) + u32(vtype) + payload
def tinfo(name, ne, ttype, offset): return gstr(name) + u32(len(ne)) + b"".join(u64(d) for d in ne) + u32(ttype) + u64(offset)
def pad(b, a=32): return b + bytes((-len(b)) % a)


def arr(elem, items_payload, n): return u32(elem) + u64(n) + items_payload


def one_tensor(ne, ttype, offset, n_data, alignment=32, kvs=b"", n_kv=0):
    return pad(header(1, n_kv) + kvs + tinfo("w", ne, ttype, offset), alignment) + bytes([0x5a]) * n_data


def valid_every_type():
    kvs = [
        kv("general.architecture", STRING, gstr("llama")),
        kv("t.u8", U8, b"\xfa"), kv("t.i8", I8, b"\xf9"), kv("t.u16", U16, struct.pack("<H", 65535)),
        kv("t.i16", I16, struct.pack("<h", -3)), kv("t.u32", U32, u32(7)), kv("t.i32", I32, struct.pack("<i", -9)),
        kv("t.f32", F32, struct.pack("<f", 1.5)), kv("t.bool", BOOL, b"\x01"), kv("t.str", STRING, gstr("h\u00e9")),
        kv("t.u64", U64, u64(2**64 - 1)), kv("t.i64", I64, i64(-(2**63))), kv("t.f64", F64, struct.pack("<d", -0.25)),
        kv("t.strs", ARRAY, arr(STRING, gstr("<unk>") + gstr("") + gstr("\u2581a"), 3)),
        kv("t.nested", ARRAY, arr(ARRAY, arr(I32, struct.pack("<ii", 1, 2), 2), 1)),
    ]
    infos = tinfo("a", [3, 2], F32T, 0) + tinfo("b", [32], Q4_0T, 32) + tinfo("c", [32, 2], Q8_0T, 64)
    body = pad(header(3, len(kvs)) + b"".join(kvs) + infos)
    return body + pad(bytes(range(24))) + pad(bytes(18)) + pad(bytes([1]) * 68)


def deep_array(levels):
    payload = arr(U8, b"", 0)
    for _ in range(levels):
        payload = arr(ARRAY, payload, 1)
    return header(0, 1) + kv("deep", ARRAY, payload)


CASES = {
    # name: (bytes, expectation, field substring)
    "valid_minimal": (header(0, 0), "accept", ""),
    "valid_v2": (header(0, 1, version=2) + kv("general.architecture", STRING, gstr("llama")), "accept", ""),
    "valid_every_type": (valid_every_type(), "accept", ""),
    "valid_align64": (one_tensor([8], F32T, 0, 64, 64, kv("general.alignment", U32, u32(64)), 1), "accept", ""),
    "valid_vocab_only_unpadded": (header(0, 1) + kv("tokenizer.ggml.tokens", ARRAY, arr(STRING, gstr("a"), 1)), "accept", ""),
    "empty_file": (b"", "reject", "magic"),
    "short_magic": (b"GG", "reject", "magic"),
    "bad_magic": (b"GGML" + header(0, 0)[4:], "reject", "magic"),
    "version_1": (header(0, 0, version=1), "reject", "version"),
    "version_4": (header(0, 0, version=4), "reject", "version"),
    "big_endian": (MAGIC + struct.pack(">I", 3) + bytes(16), "reject", "version"),
    "truncated_header": (header(0, 0)[:20], "reject", "n_kv"),
    "n_kv_huge": (header(0, 2**62) + bytes(64), "reject", "n_kv"),
    "n_tensors_huge": (header(2**64 - 1, 0) + bytes(64), "reject", "n_tensors"),
    "key_length_past_end": (header(0, 1) + u64(1 << 40) + bytes(16), "reject", "metadata[0].key"),
    "empty_key": (header(0, 1) + kv("", U8, b"\x01"), "reject", "metadata[0].key"),
    "unknown_value_type": (header(0, 1) + kv("k", 13, u64(0)), "reject", "k"),
    "string_length_past_end": (header(0, 1) + kv("k", STRING, u64(1 << 33) + b"abc"), "reject", "k"),
    "truncated_value": (header(0, 1) + kv("k", U64, b"\x01\x02"), "reject", "k"),
    "bool_not_0_or_1": (header(0, 1) + kv("k", BOOL, b"\x02"), "reject", "k"),
    "duplicate_key": (header(0, 2) + kv("k", U32, u32(1)) + kv("k", U32, u32(2)), "reject", "k"),
    "array_unknown_elem_type": (header(0, 1) + kv("k", ARRAY, arr(42, b"", 0)), "reject", "k"),
    "array_length_past_end": (header(0, 1) + kv("k", ARRAY, arr(U32, u32(1), 1000)), "reject", "k"),
    "string_array_length_huge": (header(0, 1) + kv("k", ARRAY, arr(STRING, gstr("a"), 2**61)), "reject", "k"),
    "string_in_array_past_end": (header(0, 1) + kv("k", ARRAY, arr(STRING, gstr("a") + u64(500), 2)), "reject", "k"),
    "array_nested_too_deep": (deep_array(12), "reject", "deep"),
    "alignment_not_u32": (header(0, 1) + kv("general.alignment", U64, u64(32)), "reject", "general.alignment"),
    "alignment_zero": (header(0, 1) + kv("general.alignment", U32, u32(0)), "reject", "general.alignment"),
    # Found by libFuzzer: a legal 2^31 alignment on a tensor-less file must not make the
    # round-trip writer allocate 2 GiB of padding.
    "alignment_2g_no_tensors": (header(0, 1) + kv("general.alignment", U32, u32(1 << 31)), "accept", ""),
    "alignment_not_power_of_two": (header(0, 1) + kv("general.alignment", U32, u32(24)), "reject", "general.alignment"),
    "tensor_name_past_end": (header(1, 0) + u64(1 << 50) + bytes(40), "reject", "tensor[0].name"),
    "truncated_tensor_info": ((header(1, 0) + tinfo("blk.0.weight", [8], F32T, 0))[:-4], "reject", "offset"),
    "duplicate_tensor_name": (pad(header(2, 0) + tinfo("w", [8], F32T, 0) + tinfo("w", [8], F32T, 32)) + bytes(64),
                              "reject", "tensor[1].name"),
    "n_dims_0": (one_tensor([], F32T, 0, 64), "reject", "n_dims"),
    "n_dims_5": (one_tensor([1, 1, 1, 1, 1], F32T, 0, 64), "reject", "n_dims"),
    "dim_zero": (one_tensor([8, 0], F32T, 0, 64), "reject", "ne[1]"),
    "dim_negative": (one_tensor([8, 2**64 - 3], F32T, 0, 64), "reject", "ne[1]"),
    "dims_product_overflow": (one_tensor([2**32, 2**32], F32T, 0, 64), "reject", "ne[1]"),
    "unknown_tensor_type": (one_tensor([8], 31, 0, 64), "reject", "type"),
    "row_not_whole_blocks": (one_tensor([48], Q4_KT, 0, 1024), "reject", "ne[0]"),
    "offset_misaligned": (one_tensor([8], F32T, 8, 64), "reject", "offset"),
    "offset_past_end": (one_tensor([8], F32T, 2**40, 64), "reject", "offset"),
    "size_past_end": (one_tensor([8, 4], F32T, 0, 100), "reject", "offset"),
    "offset_wraps_around": (one_tensor([8], F32T, 2**64 - 32, 64), "reject", "offset"),
    "data_section_past_end": (header(1, 0) + tinfo("w", [8], F32T, 0), "reject", "data section"),
    "overlapping_tensors": (pad(header(2, 0) + tinfo("a", [16], F32T, 0) + tinfo("b", [8], F32T, 32)) + bytes(96),
                            "reject", "tensor 'b' offset"),
    "alignment_applies_to_offsets": (one_tensor([8], F32T, 32, 128, 64, kv("general.alignment", U32, u32(64)), 1),
                                     "reject", "offset"),
}


def main():
    CORPUS.mkdir(parents=True, exist_ok=True)
    for old in CORPUS.glob("*.gguf"):
        old.unlink()
    lines = []
    for name, (data, expect, field) in sorted(CASES.items()):
        (CORPUS / f"{name}.gguf").write_bytes(data)
        lines.append(f"{name}.gguf {expect} {field}".rstrip())
    EXPECTED.write_text("# generated by gen_gguf_corpus.py: FILE accept|reject FIELD-SUBSTRING\n" + "\n".join(lines) + "\n")
    print(f"wrote {len(CASES)} files to {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
