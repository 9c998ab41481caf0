// Device detection against the fixture trees under tests/fixtures/devices, fake NVML answers
// (one and several GPUs), odd inputs, this machine, and `edgellm device` end to end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "device/device.h"
#include "device/profiles.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace edgellm;
using namespace edgellm::device;

namespace {

constexpr uint64_t k_gib = 1024ull * 1024 * 1024;
constexpr uint64_t k_mib = 1024ull * 1024;

fs::path fixture(const std::string& name) {
    return fs::path(EDGELLM_SOURCE_DIR) / "tests/fixtures/devices" / name;
}

device_info detect_fixture(const std::string& name,
                           std::shared_ptr<const nvml_interface> nvml = nullptr) {
    detect_options o;
    o.root = fixture(name);
    o.nvml = std::move(nvml);
    return detect_device(o);
}

const capability& cap(const std::vector<capability>& caps, const std::string& name) {
    for (const auto& c : caps)
        if (c.name == name) return c;
    throw std::runtime_error("no capability row " + name);
}

const backend_settings& backend(const std::vector<backend_settings>& all, const std::string& name) {
    for (const auto& b : all)
        if (b.backend == name) return b;
    throw std::runtime_error("no backend " + name);
}

std::string setting(const backend_settings& b, const std::string& key) {
    for (const auto& [k, v] : b.settings)
        if (k == key) return v;
    return "<missing>";
}

void write_file(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

TEST(DeviceDetect, OrinNano8GbFixtureIsAJetsonWithUnifiedMemoryAndPowerModeFromStatus) {
    device_info d = detect_fixture("orin-nano-8gb");
    EXPECT_EQ(d.kind, device_kind::jetson);
    ASSERT_TRUE(d.jetson);
    EXPECT_EQ(d.jetson->module, jetson_module::orin_nano_8gb);
    EXPECT_EQ(d.jetson->l4t_release, "R36.3.0");
    EXPECT_EQ(d.jetson->board_model, "NVIDIA Jetson Orin Nano Developer Kit");
    EXPECT_EQ(d.jetson->cc_major, 8);
    EXPECT_EQ(d.jetson->cc_minor, 7);
    ASSERT_TRUE(d.jetson->power_mode_id);
    EXPECT_EQ(*d.jetson->power_mode_id, 1);  // status file wins over the configured default 0
    EXPECT_EQ(d.jetson->power_mode_name, "7W");
    EXPECT_EQ(d.jetson->system_reserve_bytes, 2 * k_gib);
    EXPECT_TRUE(d.unified_memory);
    EXPECT_EQ(d.memory.total_bytes, 7620244ull * 1024);
    EXPECT_EQ(d.memory.available_bytes, 6291456ull * 1024);
    EXPECT_EQ(d.cpu.arch, "aarch64");
    EXPECT_EQ(d.cpu.model_name, "Cortex-A78AE");
    EXPECT_EQ(d.cpu.n_logical, 6);
    EXPECT_EQ(d.cpu.n_physical, 6);
    EXPECT_TRUE(d.cpu.features.neon);
    EXPECT_TRUE(d.cpu.features.dotprod);
    EXPECT_TRUE(d.cpu.features.fp16);
    EXPECT_FALSE(d.cpu.features.sve);
    EXPECT_FALSE(d.cpu.features.avx2);
    ASSERT_EQ(d.gpus.size(), 1u);  // the integrated GPU, whose memory is the system RAM
    EXPECT_EQ(d.gpus[0].memory_total_bytes, d.memory.total_bytes);
    EXPECT_EQ(d.recommended_threads(), 6);
    EXPECT_EQ(d.cgroup.version, 2);
    EXPECT_FALSE(d.cgroup.memory_max_bytes);

    auto caps = capabilities(d);
    EXPECT_TRUE(cap(caps, "CUDA").available);
    EXPECT_TRUE(cap(caps, "Unified memory").available);
    EXPECT_FALSE(cap(caps, "MPS").available);
    EXPECT_TRUE(cap(caps, "INT8").available);
    EXPECT_TRUE(cap(caps, "Dot product").available);
    auto settings = recommended_settings(d);
    const auto& llama = backend(settings, "llama.cpp");
    EXPECT_EQ(setting(llama, "n_threads"), "6");
    EXPECT_EQ(setting(llama, "n_batch"), "256");  // the seed's Jetson batch
    // 7.27 GiB less the 2 GiB reserve: 5 whole GiB for Transformers' max_memory.
    EXPECT_EQ(setting(backend(settings, "transformers"), "max_memory"), "{0: \"5GiB\"}");
}

TEST(DeviceDetect, OrinNx16GbFixtureUsesConfiguredDefaultPowerMode) {
    device_info d = detect_fixture("orin-nx-16gb");
    EXPECT_EQ(d.kind, device_kind::jetson);
    ASSERT_TRUE(d.jetson);
    EXPECT_EQ(d.jetson->module, jetson_module::orin_nx_16gb);
    EXPECT_EQ(d.jetson->module_name, "Jetson Orin NX 16GB");
    EXPECT_EQ(d.jetson->l4t_release, "R35.4.1");
    ASSERT_TRUE(d.jetson->power_mode_id);
    EXPECT_EQ(*d.jetson->power_mode_id, 2);
    EXPECT_EQ(d.jetson->power_mode_name, "15W");
    EXPECT_EQ(d.cpu.n_physical, 8);
    EXPECT_EQ(d.cgroup.version, 0);  // no cgroup filesystem in this tree
    EXPECT_TRUE(d.jetson->flash_attention_recommended);
}

TEST(DeviceDetect, X86RtxFixtureReadsTopologyFromCpuinfoAndGpuFromNvmlJson) {
    device_info d = detect_fixture("x86-rtx");
    EXPECT_EQ(d.kind, device_kind::cuda);
    EXPECT_FALSE(d.jetson);
    EXPECT_FALSE(d.unified_memory);
    EXPECT_EQ(d.cpu.arch, "x86_64");
    EXPECT_EQ(d.cpu.vendor, "AuthenticAMD");
    EXPECT_EQ(d.cpu.model_name, "AMD Ryzen 5 5600X 6-Core Processor");
    EXPECT_EQ(d.cpu.n_logical, 12);
    EXPECT_EQ(d.cpu.n_physical, 6);  // SMT siblings share a core id
    EXPECT_TRUE(d.cpu.features.avx2);
    EXPECT_TRUE(d.cpu.features.fma);
    EXPECT_TRUE(d.cpu.features.f16c);
    EXPECT_TRUE(d.cpu.features.sse3);
    EXPECT_FALSE(d.cpu.features.avx512f);
    EXPECT_FALSE(d.cpu.features.avx_vnni);
    EXPECT_FALSE(d.cpu.features.neon);
    ASSERT_EQ(d.gpus.size(), 1u);
    EXPECT_EQ(d.gpus[0].name, "NVIDIA GeForce RTX 3060");
    EXPECT_EQ(d.gpus[0].cc_major, 8);
    EXPECT_EQ(d.gpus[0].cc_minor, 6);
    EXPECT_EQ(d.gpus[0].memory_total_bytes, 12 * k_gib);
    EXPECT_EQ(d.gpus[0].memory_free_bytes, 12348030976ull);
    EXPECT_EQ(d.nvidia_driver_version, "550.54.14");
    EXPECT_EQ(cuda_version_string(d.cuda_driver_version), "12.4");
    EXPECT_EQ(d.cgroup.version, 1);
    EXPECT_FALSE(d.cgroup.memory_max_bytes);  // v1's huge "no limit" number
    EXPECT_FALSE(d.cgroup.cpu_max_cores);     // quota -1
    EXPECT_EQ(d.recommended_threads(), 6);

    auto caps = capabilities(d);
    EXPECT_TRUE(cap(caps, "CUDA").available);
    EXPECT_TRUE(cap(caps, "BF16").available);
    EXPECT_TRUE(cap(caps, "Tensor cores").available);
    EXPECT_FALSE(cap(caps, "AVX-512").available);
    EXPECT_TRUE(cap(caps, "AVX2 + FMA").available);
    auto settings = recommended_settings(d);
    EXPECT_TRUE(backend(settings, "vllm").supported);
    EXPECT_EQ(setting(backend(settings, "transformers"), "torch_dtype"), "bfloat16");
    EXPECT_EQ(setting(backend(settings, "onnxruntime"), "provider"), "CUDAExecutionProvider");
    EXPECT_EQ(setting(backend(settings, "llama.cpp"), "n_batch"), "512");
}

TEST(DeviceDetect, ArmCpuOnlyFixtureHonoursCgroupV2Limits) {
    device_info d = detect_fixture("arm-cpu-only");
    EXPECT_EQ(d.kind, device_kind::cpu);
    EXPECT_FALSE(d.jetson);  // a Raspberry Pi device tree is not a Jetson
    EXPECT_TRUE(d.gpus.empty());
    EXPECT_EQ(d.cpu.model_name, "Cortex-A76");
    EXPECT_EQ(d.cpu.n_physical, 4);
    EXPECT_TRUE(d.cpu.features.dotprod);
    EXPECT_EQ(d.cgroup.version, 2);
    ASSERT_TRUE(d.cgroup.memory_max_bytes);
    EXPECT_EQ(*d.cgroup.memory_max_bytes, 2 * k_gib);
    ASSERT_TRUE(d.cgroup.cpu_max_cores);
    EXPECT_DOUBLE_EQ(*d.cgroup.cpu_max_cores, 2.0);
    EXPECT_EQ(d.recommended_threads(), 2);  // 4 cores, but the quota allows 2
    EXPECT_EQ(d.usable_ram_bytes(), 2 * k_gib - 100 * k_mib);
    auto settings = recommended_settings(d);
    EXPECT_FALSE(backend(settings, "vllm").supported);
    EXPECT_EQ(setting(backend(settings, "llama.cpp"), "n_gpu_layers"), "0");
    EXPECT_FALSE(cap(capabilities(d), "CUDA").available);
}

TEST(DeviceDetect, FakeNvmlWithTwoGpusListsBothAndPlansForTheWeakest) {
    gpu_info a;
    a.name = "NVIDIA GeForce RTX 4090";
    a.cc_major = 8;
    a.cc_minor = 9;
    a.memory_total_bytes = 24 * k_gib;
    a.memory_free_bytes = 23 * k_gib;
    gpu_info b;
    b.name = "Tesla T4";
    b.cc_major = 7;
    b.cc_minor = 5;
    b.memory_total_bytes = 16 * k_gib;
    b.memory_free_bytes = 15 * k_gib;
    auto nvml =
        std::make_shared<fake_nvml>("535.104.05", 12020, std::vector<fake_gpu>{{a, {}}, {b, {}}});
    device_info d = detect_fixture("arm-cpu-only", nvml);
    EXPECT_EQ(d.kind, device_kind::cuda);
    ASSERT_EQ(d.gpus.size(), 2u);
    EXPECT_EQ(d.gpus[0].index, 0);
    EXPECT_EQ(d.gpus[1].index, 1);
    EXPECT_EQ(d.gpus[1].name, "Tesla T4");
    EXPECT_EQ(cuda_version_string(d.cuda_driver_version), "12.2");
    auto caps = capabilities(d);
    EXPECT_FALSE(cap(caps, "BF16").available);  // the T4 (7.5) cannot
    EXPECT_EQ(setting(backend(recommended_settings(d), "vllm"), "tensor_parallel_size"), "2");
    EXPECT_FALSE(nvml->device(2));
}

TEST(DeviceDetect, MalformedNvmlFixtureIsAClearError) {
    auto dir = test::temp_dir("nvml");
    write_file(dir / "bad.json", "{\"gpus\": [ {\"name\": 3} ]}");
    try {
        load_nvml_fixture(dir / "bad.json");
        FAIL() << "expected an error";
    } catch (const edgellm::error& e) {
        EXPECT_NE(std::string(e.what()).find("'name'"), std::string::npos) << e.what();
    }
    write_file(dir / "notjson.json", "{oops");
    EXPECT_THROW(load_nvml_fixture(dir / "notjson.json"), edgellm::error);
    EXPECT_THROW(load_nvml_fixture(dir / "missing.json"), edgellm::error);
    write_file(dir / "cc.json", R"({"gpus": [{"compute_capability": "x.y"}]})");
    EXPECT_THROW(load_nvml_fixture(dir / "cc.json"), edgellm::error);
    fs::remove_all(dir);
}

TEST(DeviceDetect, JetsonVariantFromMemTotalWhenDeviceTreeLacksTheSku) {
    auto dir = test::temp_dir("jetson4");
    write_file(dir / "proc/device-tree/model",
               std::string("NVIDIA Jetson Orin Nano Developer Kit") + '\0');
    write_file(dir / "proc/meminfo", "MemTotal:        3800000 kB\nMemAvailable:    3000000 kB\n");
    device_info d = detect_device({dir, nullptr});
    ASSERT_TRUE(d.jetson);
    EXPECT_EQ(d.jetson->module, jetson_module::orin_nano_4gb);
    EXPECT_EQ(d.jetson->system_reserve_bytes, 1 * k_gib);
    EXPECT_FALSE(d.jetson->power_mode_id);  // no nvpmodel files
    fs::remove_all(dir);
}

TEST(DeviceDetect, EmptyOrGarbageTreesGiveACpuDeviceWithoutCrashing) {
    auto dir = test::temp_dir("garbage");
    device_info empty = detect_device({dir, nullptr});
    EXPECT_EQ(empty.kind, device_kind::cpu);
    EXPECT_EQ(empty.recommended_threads(), 1);
    write_file(dir / "proc/cpuinfo",
               "processor : x\n:::\nflags\nCPU part : 0xzz\ncore id : \n\n\x01\x02");
    write_file(dir / "proc/meminfo", "MemTotal: lots kB\nMemAvailable: -5 kB\n");
    write_file(dir / "sys/fs/cgroup/cgroup.controllers", "");
    write_file(dir / "sys/fs/cgroup/cpu.max", "abc def\n");
    write_file(dir / "sys/fs/cgroup/memory.max", "-1\n");
    device_info g = detect_device({dir, nullptr});
    EXPECT_EQ(g.kind, device_kind::cpu);
    EXPECT_EQ(g.memory.total_bytes, 0u);
    EXPECT_FALSE(g.cgroup.cpu_max_cores);
    EXPECT_FALSE(g.cgroup.memory_max_bytes);
    EXPECT_GE(g.recommended_threads(), 1);
    EXPECT_FALSE(capabilities(g).empty());
    fs::remove_all(dir);
}

TEST(DeviceDetect, ThisMachineMatchesTheOsCounts) {
    device_info d = detect_device();
    EXPECT_EQ(d.root, "/");
    EXPECT_GT(d.memory.total_bytes, 0u);
    EXPECT_LE(d.memory.available_bytes, d.memory.total_bytes);
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    EXPECT_EQ(d.cpu.n_logical, conf);
    EXPECT_GE(d.cpu.n_physical, 1);
    EXPECT_LE(d.cpu.n_physical, d.cpu.n_logical);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    EXPECT_EQ(d.memory.total_bytes, static_cast<uint64_t>(pages) * static_cast<uint64_t>(page));
    // The real NVML either works or says why not; it never throws.
    auto nvml = make_system_nvml();
    if (nvml->available())
        EXPECT_GE(nvml->device_count(), 1);
    else
        EXPECT_FALSE(nvml->unavailable_reason().empty());
    auto j = to_json(d);
    EXPECT_EQ(j["cpu"]["n_logical"].get<int>(), d.cpu.n_logical);
}

TEST(DeviceCli, DeviceJsonOnEveryFixture) {
    const char* bin = std::getenv("EDGELLM_BIN");
    if (!bin) GTEST_SKIP() << "EDGELLM_BIN not set (run through ctest)";
    struct expect {
        const char* name;
        const char* kind;
    };
    for (auto e : {expect{"orin-nano-8gb", "jetson"}, expect{"orin-nx-16gb", "jetson"},
                   expect{"x86-rtx", "cuda"}, expect{"arm-cpu-only", "cpu"}}) {
        std::string cmd = std::string(bin) + " device --json --root " + fixture(e.name).string();
        std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
        ASSERT_TRUE(pipe);
        std::string out;
        std::array<char, 4096> buf{};
        size_t n;
        while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
        auto j = nlohmann::json::parse(out);
        EXPECT_EQ(j["device"]["kind"], e.kind) << e.name;
        EXPECT_FALSE(j["capabilities"].empty());
        EXPECT_EQ(j["recommended_settings"].size(), 5u);
    }
}

TEST(DeviceDetect, MissingRootIsAUsageError) {
    EXPECT_THROW(detect_device({"/nonexistent/edgellm-root", nullptr}), usage_error);
}
