// GGUF reader/writer: round trips of every value and tensor type, rejection of every malformed
// header/metadata/tensor case with a message naming the field, and reading the shared GGUFs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include "gguf/gguf.h"
#include "gguf/gguf_summary.h"
#include "test_util.h"

using namespace edgellm;
using namespace edgellm::gguf;

namespace {

// Raw little-endian byte builder for hand-made (often deliberately broken) GGUF files.
struct raw {
    std::vector<uint8_t> b;
    raw& u8(uint8_t v) { return put(&v, 1); }
    raw& u32(uint32_t v) { return put(&v, 4); }
    raw& u64(uint64_t v) { return put(&v, 8); }
    raw& str(const std::string& s) {
        u64(s.size());
        return put(s.data(), s.size());
    }
    raw& put(const void* p, size_t n) {
        const auto* c = static_cast<const uint8_t*>(p);
        b.insert(b.end(), c, c + n);
        return *this;
    }
    raw& pad(size_t alignment) {
        while (b.size() % alignment) b.push_back(0);
        return *this;
    }
    raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        return u32(k_magic).u32(version).u64(n_tensors).u64(n_kv);
    }
    raw& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
    raw& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(ne.size()));
        for (auto d : ne) u64(d);
        return u32(type).u64(offset);
    }
};

// Parses `bytes` and returns the format_error message ("" when it parsed fine).
std::string parse_error(const std::vector<uint8_t>& bytes, std::string* field = nullptr) {
    try {
        file::from_memory(bytes.data(), bytes.size());
    } catch (const format_error& e) {
        if (field) *field = e.field();
        return e.what();
    }
    return "";
}

#define EXPECT_REJECTED(bytes, field_part, msg_part)                                            \
    do {                                                                                        \
        std::string field_;                                                                     \
        const std::string msg_ = parse_error(bytes, &field_);                                   \
        EXPECT_NE(msg_, "") << "accepted a malformed file";                                     \
        EXPECT_NE(field_.find(field_part), std::string::npos) << "field: " << field_ << " / " << msg_; \
        EXPECT_NE(msg_.find(msg_part), std::string::npos) << msg_;                              \
    } while (0)

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& x : v) x = static_cast<uint8_t>(rng());
    return v;
}

// A writer holding every value type, nested and string arrays, and several tensor types with
// odd shapes.
writer make_everything_writer() {
    writer w;
    w.set("general.architecture", value::make_string("llama"));
    w.set("t.u8", value::make_u8(250));
    w.set("t.i8", value::make_i8(-7));
    w.set("t.u16", value::make_u16(65535));
    w.set("t.i16", value::make_i16(-32768));
    w.set("t.u32", value::make_u32(4000000000u));
    w.set("t.i32", value::make_i32(-123456789));
    w.set("t.u64", value::make_u64(std::numeric_limits<uint64_t>::max()));
    w.set("t.i64", value::make_i64(std::numeric_limits<int64_t>::min()));
    w.set("t.f32", value::make_f32(3.25f));
    w.set("t.f64", value::make_f64(-1e300));
    w.set("t.bool", value::make_bool(true));
    w.set("t.string", value::make_string("h\xc3\xa9llo\n\0x"));
    w.set("t.empty_string", value::make_string(""));
    w.set("t.strings", value::make_array(value_type::string, {value::make_string("<unk>"), value::make_string(""),
                                                               value::make_string("\xe2\x96\x81the")}));
    w.set("t.i32s", value::make_array(value_type::i32, {value::make_i32(1), value::make_i32(-2), value::make_i32(3)}));
    w.set("t.f32s", value::make_array(value_type::f32, {value::make_f32(0.5f), value::make_f32(-0.0f)}));
    w.set("t.empty", value::make_array(value_type::u8, {}));
    w.set("t.nested", value::make_array(value_type::array,
                                        {value::make_array(value_type::u16, {value::make_u16(1)}),
                                         value::make_array(value_type::string, {value::make_string("a")})}));
    w.add_tensor("f32", ggml_type::f32, {3, 5}, random_bytes(60, 1).data(), 60);
    w.add_tensor("f16", ggml_type::f16, {17}, random_bytes(34, 2).data(), 34);
    w.add_tensor("q4_0", ggml_type::q4_0, {64, 3}, random_bytes(18 * 6, 3).data(), 18 * 6);
    w.add_tensor("q8_0", ggml_type::q8_0, {32, 1, 3}, random_bytes(34 * 3, 4).data(), 34 * 3);
    w.add_tensor("q4_k", ggml_type::q4_k, {256, 1, 1, 2}, random_bytes(144 * 2, 5));
    return w;
}

}  // namespace

TEST(GgufRoundTrip, EveryValueTypeReadsBackEqual) {
    const writer w = make_everything_writer();
    const auto bytes = w.to_bytes();
    const file f = file::from_memory(bytes.data(), bytes.size());
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.metadata().size(), 19u);
    EXPECT_EQ(f.metadata()[0].first, "general.architecture");
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get("t.u8").type, value_type::u8);
    EXPECT_EQ(f.get_u64("t.u8"), 250u);
    EXPECT_EQ(f.get_i64("t.i8"), -7);
    EXPECT_EQ(f.get_u64("t.u16"), 65535u);
    EXPECT_EQ(f.get_i64("t.i16"), -32768);
    EXPECT_EQ(f.get_u64("t.u32"), 4000000000u);
    EXPECT_EQ(f.get_i64("t.i32"), -123456789);
    EXPECT_EQ(f.get_u64("t.u64"), std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(f.get_i64("t.i64"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(f.get("t.f32").type, value_type::f32);
    EXPECT_EQ(f.get_f64("t.f32"), 3.25);
    EXPECT_EQ(f.get_f64("t.f64"), -1e300);
    EXPECT_TRUE(f.get_bool("t.bool"));
    EXPECT_EQ(f.get_string("t.string"), "h\xc3\xa9llo\n");  // the literal stops at the \0
    EXPECT_EQ(f.get_string("t.empty_string"), "");
    const auto& strs = f.get_array("t.strings");
    EXPECT_EQ(strs.elem_type, value_type::string);
    ASSERT_EQ(strs.items.size(), 3u);
    EXPECT_EQ(strs.items[2].as_string(), "\xe2\x96\x81the");
    EXPECT_EQ(f.get_array("t.i32s").items[1].as_i64(), -2);
    EXPECT_TRUE(std::signbit(f.get_array("t.f32s").items[1].as_f64()));
    EXPECT_TRUE(f.get_array("t.empty").items.empty());
    const auto& nested = f.get_array("t.nested");
    EXPECT_EQ(nested.elem_type, value_type::array);
    EXPECT_EQ(nested.items[0].as_array().elem_type, value_type::u16);
    EXPECT_EQ(nested.items[1].as_array().items[0].as_string(), "a");

    ASSERT_EQ(f.tensors().size(), 5u);
    const auto* q4k = f.find_tensor("q4_k");
    ASSERT_NE(q4k, nullptr);
    EXPECT_EQ(q4k->type, ggml_type::q4_k);
    EXPECT_EQ(q4k->n_dims, 4);
    EXPECT_EQ(q4k->ne[3], 2);
    EXPECT_EQ(q4k->size_bytes, 288u);
    EXPECT_EQ(std::memcmp(q4k->data, random_bytes(288, 5).data(), 288), 0);
    const auto* f16 = f.find_tensor("f16");
    EXPECT_EQ(f16->n_elements(), 17);
    EXPECT_EQ(std::memcmp(f16->data, random_bytes(34, 2).data(), 34), 0);
    for (const auto& t : f.tensors()) {
        EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
        EXPECT_EQ(t.data, bytes.data() + f.data_offset() + t.offset);
    }
    EXPECT_EQ(f.find_tensor("missing"), nullptr);
}

// Rebuilds a writer from a parsed file (what a "copy" tool would do).
static writer rewrite(const file& f) {
    writer w;
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (const auto& t : f.tensors())
        w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.size_bytes);
    return w;
}

TEST(GgufRoundTrip, ReadThenWriteIsByteExact) {
    const auto bytes = make_everything_writer().to_bytes();
    const file f = file::from_memory(bytes.data(), bytes.size());
    EXPECT_EQ(rewrite(f).to_bytes(), bytes);
}

TEST(GgufRoundTrip, CustomAlignmentIsHonoured) {
    writer w = make_everything_writer();
    w.set_alignment(64);
    const auto bytes = w.to_bytes();
    const file f = file::from_memory(bytes.data(), bytes.size());
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % 64, 0u);
    EXPECT_EQ(rewrite(f).to_bytes(), bytes);
}

// A fuzzer find: a tensor-less file with a legal but huge alignment (2^31) once made the writer
// pad the header to 2 GiB. Without a data section there is nothing to align.
TEST(GgufRoundTrip, HugeAlignmentWithoutTensorsWritesNoPadding) {
    writer w;
    w.set("general.architecture", value::make_string("llama"));
    w.set_alignment(1u << 31);
    const auto bytes = w.to_bytes();
    EXPECT_LT(bytes.size(), 4096u);
    const file f = file::from_memory(bytes.data(), bytes.size());
    EXPECT_EQ(f.alignment(), 1u << 31);
    EXPECT_EQ(rewrite(f).to_bytes(), bytes);
    const auto dir = test::temp_dir("gguf-align");
    w.write((dir / "a.gguf").string());
    EXPECT_EQ(std::filesystem::file_size(dir / "a.gguf"), bytes.size());
    std::filesystem::remove_all(dir);
}

TEST(GgufRoundTrip, StreamedFileEqualsInMemoryBytesAndLazyTensorsFill) {
    writer w = make_everything_writer();
    w.add_tensor_lazy("lazy", ggml_type::q6_k, {256, 3}, [](uint8_t* dst, size_t n) {
        for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(i * 7);
    });
    const auto dir = test::temp_dir("gguf-write");
    const auto path = (dir / "out.gguf").string();
    w.write(path);
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> on_disk((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(on_disk, w.to_bytes());
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    const file f = file::open(path);
    const auto* t = f.find_tensor("lazy");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->size_bytes, 3u * 210u);
    EXPECT_EQ(t->data[5], 35);
    EXPECT_EQ(f.file_size(), on_disk.size());
    std::filesystem::remove_all(dir);
}

TEST(GgufWriter, RejectsInconsistentInput) {
    writer w;
    EXPECT_THROW(w.add_tensor("a", ggml_type::q4_0, {33}, random_bytes(18, 1).data(), 18), error);  // not whole blocks
    EXPECT_THROW(w.add_tensor("a", ggml_type::f32, {4}, random_bytes(12, 1).data(), 12), error);    // wrong size
    EXPECT_THROW(w.add_tensor("a", ggml_type::f32, {}, nullptr, 0), error);
    EXPECT_THROW(w.add_tensor("a", ggml_type::f32, {1, 1, 1, 1, 1}, random_bytes(4, 1).data(), 4), error);
    EXPECT_THROW(w.add_tensor("a", ggml_type::f32, {0}, nullptr, 0), error);
    w.add_tensor("a", ggml_type::f32, {1}, random_bytes(4, 1).data(), 4);
    EXPECT_THROW(w.add_tensor("a", ggml_type::f32, {1}, random_bytes(4, 1).data(), 4), error);  // duplicate
    EXPECT_THROW(w.set_alignment(0), error);
    EXPECT_THROW(w.set_alignment(48), error);
    EXPECT_THROW(w.set("general.alignment", value::make_u64(64)), error);
    EXPECT_THROW(w.set("", value::make_u8(1)), error);
    EXPECT_THROW(w.set("x", value{value_type::u8, uint64_t{300}}), error);
    try {
        w.set("k.mixed", value{value_type::array, std::make_shared<array_value>(array_value{
                                                       value_type::u8, {value::make_u8(1), value::make_i8(1)}})});
        FAIL() << "mixed array accepted";
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("k.mixed"), std::string::npos) << e.what();
    }
    EXPECT_THROW(w.write("/nonexistent-dir/x.gguf"), error);
}

TEST(GgufWriter, SetReplacesKeepingPosition) {
    writer w;
    w.set("a", value::make_u8(1));
    w.set("b", value::make_u8(2));
    w.set("a", value::make_string("x"));
    const auto bytes = w.to_bytes();
    const file f = file::from_memory(bytes.data(), bytes.size());
    ASSERT_EQ(f.metadata().size(), 2u);
    EXPECT_EQ(f.metadata()[0].first, "a");
    EXPECT_EQ(f.get_string("a"), "x");
}

TEST(GgufValue, ConversionsCheckTypeAndRange) {
    EXPECT_EQ(value::make_i32(5).as_u64(), 5u);
    EXPECT_THROW(value::make_i32(-5).as_u64(), error);
    EXPECT_THROW(value::make_u64(std::numeric_limits<uint64_t>::max()).as_i64(), error);
    EXPECT_EQ(value::make_u16(7).as_f64(), 7.0);
    EXPECT_THROW(value::make_string("1").as_u64(), error);
    EXPECT_THROW(value::make_f32(1).as_i64(), error);
    EXPECT_THROW(value::make_u8(1).as_bool(), error);
    EXPECT_THROW(value::make_bool(true).as_string(), error);
    EXPECT_THROW(value::make_u8(1).as_array(), error);
    EXPECT_EQ(value_type_name(value_type::boolean), "bool");
}

TEST(GgufFile, GettersNameTheKey) {
    const auto bytes = make_everything_writer().to_bytes();
    const file f = file::from_memory(bytes.data(), bytes.size());
    EXPECT_FALSE(f.get_u64_opt("nope").has_value());
    EXPECT_EQ(f.get_string_opt("general.architecture").value(), "llama");
    EXPECT_EQ(f.get_f64_opt("t.f32").value(), 3.25);
    EXPECT_EQ(f.get_bool_opt("t.bool").value(), true);
    for (auto fn : {+[](const file& x) { x.get_u64("t.string"); }, +[](const file& x) { x.get_string("missing.key"); },
                    +[](const file& x) { x.get_bool_opt("t.u8"); }, +[](const file& x) { x.get_i64("t.u64"); }}) {
        try {
            fn(f);
            ADD_FAILURE() << "no error";
        } catch (const error& e) {
            const std::string m = e.what();
            EXPECT_TRUE(m.find("t.string") != std::string::npos || m.find("missing.key") != std::string::npos ||
                        m.find("t.u8") != std::string::npos || m.find("t.u64") != std::string::npos)
                << m;
        }
    }
}

// ---- malformed files: each defect is rejected with the field it concerns ----

TEST(GgufMalformed, HeaderDefects) {
    EXPECT_REJECTED(std::vector<uint8_t>{}, "magic", "truncated");
    EXPECT_REJECTED(raw().u32(0x46554746).u32(3).u64(0).u64(0).b, "magic", "not a GGUF file");
    EXPECT_REJECTED(raw().header(0, 0, 1).b, "version", "version 1 is not supported");
    EXPECT_REJECTED(raw().header(0, 0, 4).b, "version", "unsupported GGUF version 4");
    EXPECT_REJECTED(raw().header(0, 0, 0x03000000).b, "version", "big-endian");
    EXPECT_REJECTED(raw().u32(k_magic).u32(3).u64(0).b, "n_kv", "truncated");
    EXPECT_REJECTED(raw().header(0, 1ull << 60).b, "n_kv", "cannot fit");
    EXPECT_REJECTED(raw().header(std::numeric_limits<uint64_t>::max(), 0).b, "n_tensors", "cannot fit");
    // 40 bytes left: room for 1 tensor info at most, not 2.
    EXPECT_REJECTED(raw().header(2, 0).put(std::vector<uint8_t>(40).data(), 40).b, "n_tensors", "cannot fit");
}

TEST(GgufMalformed, MetadataDefects) {
    EXPECT_REJECTED(raw().header(0, 1).u64(1000).put("abcdefghijklmnop", 16).b, "metadata[0].key", "exceeds");
    EXPECT_REJECTED(raw().header(0, 1).str("").u32(0).u8(1).b, "metadata[0].key", "empty");
    EXPECT_REJECTED(raw().header(0, 1).str("a.key").u32(13).u64(0).b, "a.key", "unknown value type 13");
    EXPECT_REJECTED(raw().header(0, 1).str("a.key").u32(8).u64(1ull << 40).put("abcd", 4).b, "a.key", "exceeds");
    EXPECT_REJECTED(raw().header(0, 1).str("a.key").u32(4).u8(1).b, "a.key", "truncated");
    EXPECT_REJECTED(raw().header(0, 1).str("a.key").u32(7).u8(2).b, "a.key", "neither 0 nor 1");
    EXPECT_REJECTED(raw().header(0, 2).kv_u32("a", 1).kv_u32("a", 2).b, "a", "duplicate metadata key");
    // Arrays: unknown element type, length past the end (even for strings), nesting too deep.
    EXPECT_REJECTED(raw().header(0, 1).str("arr").u32(9).u32(77).u64(0).b, "arr", "unknown array element type 77");
    EXPECT_REJECTED(raw().header(0, 1).str("arr").u32(9).u32(5).u64(1000).u32(1).b, "arr", "array length 1000");
    EXPECT_REJECTED(raw().header(0, 1).str("arr").u32(9).u32(8).u64(1ull << 61).u64(0).b, "arr", "cannot fit");
    EXPECT_REJECTED(raw().header(0, 1).str("arr").u32(9).u32(8).u64(2).str("ok").u64(99).b, "arr", "exceeds");
    raw deep;
    deep.header(0, 1).str("deep").u32(9);
    for (int i = 0; i < k_max_array_depth + 2; ++i) deep.u32(9).u64(1);
    deep.u32(0).u64(0);
    EXPECT_REJECTED(deep.b, "deep", "nested deeper");
    // general.alignment: wrong type, zero, not a power of two.
    EXPECT_REJECTED(raw().header(0, 1).str("general.alignment").u32(10).u64(32).b, "general.alignment", "must be u32");
    EXPECT_REJECTED(raw().header(0, 1).kv_u32("general.alignment", 0).b, "general.alignment", "power of two");
    EXPECT_REJECTED(raw().header(0, 1).kv_u32("general.alignment", 48).b, "general.alignment", "power of two");
}

namespace {
// One tensor "w" after the given tensor-info bytes, data padded to 32.
std::vector<uint8_t> one_tensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes) {
    raw r;
    r.header(1, 0).tensor("w", ne, type, offset).pad(32);
    std::vector<uint8_t> d(data_bytes, 0x11);
    r.put(d.data(), d.size());
    return r.b;
}
}  // namespace

TEST(GgufMalformed, TensorDefects) {
    EXPECT_EQ(parse_error(one_tensor({8, 2}, 0, 0, 64)), "");  // the well-formed base case
    EXPECT_REJECTED(one_tensor({}, 0, 0, 64), "n_dims", "n_dims is 0");
    EXPECT_REJECTED(one_tensor({1, 1, 1, 1, 1}, 0, 0, 64), "n_dims", "n_dims is 5");
    EXPECT_REJECTED(one_tensor({8, 0}, 0, 0, 64), "ne[1]", "not positive");
    EXPECT_REJECTED(one_tensor({8, 1ull << 63}, 0, 0, 64), "ne[1]", "not positive");
    EXPECT_REJECTED(one_tensor({1ull << 32, 1ull << 32}, 0, 0, 64), "ne[1]", "overflows");
    EXPECT_REJECTED(one_tensor({8, 2}, 31, 0, 64), "type", "unknown tensor type 31");
    EXPECT_REJECTED(one_tensor({8, 2}, 1000, 0, 64), "type", "unknown tensor type 1000");
    EXPECT_REJECTED(one_tensor({48, 2}, 12, 0, 4096), "ne[0]", "not a multiple of the Q4_K block size 256");
    EXPECT_REJECTED(one_tensor({8, 2}, 0, 16, 128), "offset", "not a multiple of the alignment 32");
    EXPECT_REJECTED(one_tensor({8, 2}, 0, 0, 63), "offset", "past the end");
    EXPECT_REJECTED(one_tensor({8, 2}, 0, 1ull << 63, 64), "offset", "past the end");
    EXPECT_REJECTED(one_tensor({8, 2}, 0, std::numeric_limits<uint64_t>::max() - 31, 64), "offset", "");
    // The data section itself starting past the end (no padding, no data).
    EXPECT_REJECTED(raw().header(1, 0).tensor("w", {8}, 0, 0).b, "data section", "past the end");
    // Duplicate names and overlapping data.
    raw dup;
    dup.header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32);
    dup.put(std::vector<uint8_t>(64).data(), 64);
    EXPECT_REJECTED(dup.b, "tensor[1].name", "duplicate tensor name");
    raw overlap;
    overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad(32);
    overlap.put(std::vector<uint8_t>(96).data(), 96);
    EXPECT_REJECTED(overlap.b, "tensor 'b' offset", "overlaps tensor 'a'");
    // Tensor-info name length past the end.
    EXPECT_REJECTED(raw().header(1, 0).u64(1ull << 50).put(std::vector<uint8_t>(40).data(), 40).b, "tensor[0].name", "exceeds");
}

TEST(GgufMalformed, TensorCustomAlignmentApplies) {
    raw r;
    r.header(1, 1).kv_u32("general.alignment", 64).tensor("w", {8}, 0, 32).pad(64);
    r.put(std::vector<uint8_t>(128).data(), 128);
    EXPECT_REJECTED(r.b, "offset", "alignment 64");
}

TEST(GgufMalformed, EveryTruncationOfAValidFileIsRejectedCleanly) {
    const auto bytes = make_everything_writer().to_bytes();
    // Stop before the last tensor's data ends: every shorter prefix must fail with a format_error.
    const auto f = file::from_memory(bytes.data(), bytes.size());
    uint64_t needed = 0;
    for (const auto& t : f.tensors()) needed = std::max(needed, f.data_offset() + t.offset + t.size_bytes);
    for (size_t n = 0; n < needed; ++n) {
        std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_NE(parse_error(prefix), "") << "prefix of " << n << " bytes accepted";
    }
}

TEST(GgufMalformed, RandomByteFlipsNeverCrash) {
    const auto bytes = make_everything_writer().to_bytes();
    std::mt19937 rng(1234);
    size_t n_rejected = 0;
    for (int i = 0; i < 3000; ++i) {
        auto b = bytes;
        const int n_flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < n_flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
        if (!parse_error(b).empty()) ++n_rejected;
    }
    EXPECT_GT(n_rejected, 0u);
}

TEST(GgufFile, OpenNamesThePathInErrors) {
    const auto dir = test::temp_dir("gguf-bad");
    const auto path = (dir / "bad.gguf").string();
    std::ofstream(path, std::ios::binary) << "GGML-not-really";
    try {
        file::open(path);
        FAIL() << "bad file accepted";
    } catch (const format_error& e) {
        EXPECT_EQ(e.field(), "magic");
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    EXPECT_THROW(file::open((dir / "missing.gguf").string()), error);
    std::filesystem::remove_all(dir);
}

// ---- every GGUF shipped in ../shared reads, and rewrites byte-exactly where its layout is ours ----

TEST(GgufShared, EverySharedGgufReads) {
    const auto root = test::shared_path("");
    if (!std::filesystem::exists(root / "models") && !std::filesystem::exists(root / "tokenizer"))
        GTEST_SKIP() << "../shared not present: " << root;
    size_t n_files = 0;
    for (const char* sub : {"models", "tokenizer"}) {
        if (!std::filesystem::exists(root / sub)) continue;
        for (const auto& e : std::filesystem::recursive_directory_iterator(root / sub)) {
            if (e.path().extension() != ".gguf") continue;
            SCOPED_TRACE(e.path().string());
            ++n_files;
            const file f = file::open(e.path().string());
            EXPECT_TRUE(f.version() == 2 || f.version() == 3);
            EXPECT_TRUE(f.has("general.architecture"));
            for (const auto& t : f.tensors()) {
                EXPECT_NE(t.data, nullptr);
                EXPECT_LE(f.data_offset() + t.offset + t.size_bytes, f.file_size());
            }
            if (f.version() == 3 && !f.tensors().empty()) {
                // Model files are laid out as gguf-py writes them: our rewrite must match.
                std::ifstream in(e.path(), std::ios::binary);
                std::vector<uint8_t> orig((std::istreambuf_iterator<char>(in)), {});
                EXPECT_EQ(rewrite(f).to_bytes(), orig);
            }
        }
    }
    EXPECT_GT(n_files, 0u);
}

// ---- the checked-in fuzz corpus: each file is accepted or rejected as its manifest says ----

TEST(GgufCorpus, EveryCorpusFileMeetsItsExpectation) {
    const std::filesystem::path fuzz_dir = std::filesystem::path(EDGELLM_SOURCE_DIR) / "tests" / "fuzz";
    std::ifstream manifest(fuzz_dir / "gguf_reader_fuzz.expected");
    ASSERT_TRUE(manifest) << "missing " << fuzz_dir / "gguf_reader_fuzz.expected";
    size_t n_checked = 0, n_rejected = 0;
    std::string line;
    while (std::getline(manifest, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        std::string name, expect, field;
        fields >> name >> expect >> field;
        SCOPED_TRACE(name);
        std::ifstream in(fuzz_dir / "corpus" / "gguf_reader_fuzz" / name, std::ios::binary);
        ASSERT_TRUE(in) << "corpus file listed but missing";
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
        std::string got_field;
        const std::string msg = parse_error(bytes, &got_field);
        if (expect == "accept") {
            EXPECT_EQ(msg, "");
        } else {
            ASSERT_NE(msg, "") << "malformed file accepted";
            EXPECT_NE(got_field.find(field), std::string::npos) << "field '" << got_field << "': " << msg;
            EXPECT_NE(msg.find("byte offset"), std::string::npos) << msg;
            ++n_rejected;
        }
        ++n_checked;
    }
    EXPECT_GE(n_checked, 40u);
    EXPECT_GE(n_rejected, 35u);
}

// ---- the model summary and value rendering used by `edgellm inspect` ----

TEST(GgufSummary, SummarisesArchitectureTypesAndTokenizer) {
    writer w;
    w.set("general.architecture", value::make_string("llama"));
    w.set("general.file_type", value::make_u32(15));
    w.set("llama.block_count", value::make_u32(3));
    w.set("llama.context_length", value::make_u64(4096));
    w.set("llama.attention.head_count", value::make_array(value_type::i32, {value::make_i32(4), value::make_i32(8)}));
    w.set("tokenizer.ggml.model", value::make_string("gpt2"));
    w.set("tokenizer.ggml.tokens", value::make_array(value_type::string, {value::make_string("a"), value::make_string("b")}));
    w.add_tensor("a", ggml_type::q4_k, {256, 3}, random_bytes(3 * 144, 1));
    w.add_tensor("b", ggml_type::q4_k, {256}, random_bytes(144, 2));
    w.add_tensor("c", ggml_type::f32, {7}, random_bytes(28, 3));
    const auto bytes = w.to_bytes();
    const auto s = summarize(file::from_memory(bytes.data(), bytes.size()));
    EXPECT_EQ(s.architecture, "llama");
    EXPECT_EQ(s.file_type, "Q4_K_M");
    EXPECT_EQ(s.n_params, 256u * 3 + 256 + 7);
    EXPECT_EQ(s.n_tensors, 3u);
    EXPECT_EQ(format_type_mix(s), "Q4_K: 2 tensors, F32: 1");
    EXPECT_EQ(s.n_layers, 3u);
    EXPECT_EQ(s.context_length, 4096u);
    EXPECT_EQ(s.n_heads, 8u);  // per-layer array: the largest entry
    EXPECT_FALSE(s.n_kv_heads.has_value());
    EXPECT_EQ(s.tokenizer_model, "gpt2");
    EXPECT_EQ(s.n_vocab, 2u);
    EXPECT_FALSE(s.has_chat_template);
}

TEST(GgufSummary, FormatsValuesAbbreviatingLongOnes) {
    std::vector<value> toks;
    for (const char* t : {"<unk>", "<s>", "</s>", "x", "y"}) toks.push_back(value::make_string(t));
    const auto arr = value::make_array(value_type::string, toks);
    EXPECT_EQ(format_value(arr, 3), "[5 strings: '<unk>', '<s>', '</s>', ...]");
    EXPECT_EQ(format_value(arr, 5), "['<unk>', '<s>', '</s>', 'x', 'y']");
    EXPECT_EQ(format_value(value::make_string("a\nb"), 3), "'a\\nb'");
    EXPECT_EQ(format_value(value::make_string(std::string(100, 'z')), 3, 10), "'zzzzzzzzzz...'");
    EXPECT_EQ(format_value(value::make_i8(-3)), "-3");
    EXPECT_EQ(format_value(value::make_bool(false)), "false");
    EXPECT_EQ(value_type_label(arr), "array[string]");
    const auto j = value_to_json(arr, 2);
    EXPECT_EQ(j["n_items"], 5);
    EXPECT_EQ(j["head"].size(), 2u);
    EXPECT_EQ(value_to_json(arr).size(), 5u);
    EXPECT_EQ(value_to_json(value::make_f32(std::nanf(""))), "nan");
    EXPECT_EQ(value_to_json(value::make_u64(std::numeric_limits<uint64_t>::max())).get<uint64_t>(),
              std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(file_type_name(7), "Q8_0");
    EXPECT_EQ(file_type_name(999), "unknown (999)");
}
