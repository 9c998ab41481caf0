// Core utilities: type table, size formatting, memory mapping errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "core/mmap.h"
#include "core/units.h"
#include "quant/ggml_type.h"
#include "test_util.h"

using namespace edgellm;

TEST(GgmlType, BlockGeometryMatchesGgml) {
    EXPECT_EQ(type_traits(ggml_type::q4_0).type_size, 18u);
    EXPECT_EQ(type_traits(ggml_type::q4_k).block_size, 256);
    EXPECT_EQ(type_traits(ggml_type::q6_k).type_size, 210u);
    EXPECT_EQ(row_size(ggml_type::q8_0, 64), 68u);
    EXPECT_EQ(type_traits(31u), nullptr);  // removed Q4_0_4_4 slot
}

TEST(GgmlType, NamesParseCaseInsensitively) {
    EXPECT_EQ(type_from_name("q4_k"), ggml_type::q4_k);
    EXPECT_EQ(type_from_name("BF16"), ggml_type::bf16);
    EXPECT_FALSE(type_from_name("q9_9").has_value());
}

TEST(Units, FormatsBytesAndCounts) {
    EXPECT_EQ(format_bytes(512), "512 B");
    EXPECT_EQ(format_bytes(1536), "1.50 KiB");
    EXPECT_EQ(format_count(135200000), "135.20M");
}

TEST(MappedFile, MissingFileIsAClearError) {
    try {
        mapped_file f("/nonexistent/edgellm/model.gguf");
        FAIL() << "expected an error";
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/edgellm/model.gguf"), std::string::npos);
    }
}

TEST(MappedFile, MapsFileContents) {
    auto dir = test::temp_dir("mmap");
    auto p = dir / "x.bin";
    { std::ofstream(p, std::ios::binary) << "hello"; }
    mapped_file f(p.string());
    ASSERT_EQ(f.size(), 5u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data()), 5), "hello");
    std::filesystem::remove_all(dir);
}
