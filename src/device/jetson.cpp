// Jetson detection from /etc/nv_tegra_release, the device tree and nvpmodel (see jetson.h).
#include "device/jetson.h"

#include <regex>

#include "device/sysfs.h"

namespace edgellm::device {
namespace {

constexpr uint64_t k_gib = 1024ull * 1024 * 1024;

struct module_spec {
    jetson_module module;
    const char* gpu_name;
    int cc_major, cc_minor;
    uint64_t memory_gib;
    uint64_t reserve_mib;  // system reserve; see jetson_info::system_reserve_bytes
};

// GPU and memory facts per module, from NVIDIA's Jetson module data sheets.
const module_spec& spec_of(jetson_module m) {
    static const module_spec specs[] = {
        {jetson_module::unknown, "Tegra GPU", 0, 0, 0, 2048},
        {jetson_module::orin_nano_4gb, "Orin (Ampere, 512 CUDA cores)", 8, 7, 4, 1024},
        {jetson_module::orin_nano_8gb, "Orin (Ampere, 1024 CUDA cores)", 8, 7, 8, 2048},
        {jetson_module::orin_nx_8gb, "Orin (Ampere, 1024 CUDA cores)", 8, 7, 8, 2048},
        {jetson_module::orin_nx_16gb, "Orin (Ampere, 1024 CUDA cores)", 8, 7, 16, 2048},
        {jetson_module::agx_orin_32gb, "Orin (Ampere, 1792 CUDA cores)", 8, 7, 32, 3072},
        {jetson_module::agx_orin_64gb, "Orin (Ampere, 2048 CUDA cores)", 8, 7, 64, 4096},
        {jetson_module::xavier_nx, "Xavier (Volta, 384 CUDA cores)", 7, 2, 8, 2048},
        {jetson_module::agx_xavier, "Xavier (Volta, 512 CUDA cores)", 7, 2, 32, 3072},
        {jetson_module::nano, "Maxwell (128 CUDA cores)", 5, 3, 4, 1024},
        {jetson_module::tx2, "Pascal (256 CUDA cores)", 6, 2, 8, 2048},
    };
    for (const auto& s : specs)
        if (s.module == m) return s;
    return specs[0];
}

// SKU from the device-tree "compatible" list: p3767 is the Orin NX/Nano module family,
// p3701 AGX Orin, p3668 Xavier NX, p2888 AGX Xavier, p3448 Nano, p3310/p3489 TX2.
jetson_module module_from_compatible(const std::string& compatible) {
    struct sku {
        const char* tag;
        jetson_module module;
    };
    static const sku skus[] = {
        {"p3767-0000", jetson_module::orin_nx_16gb},
        {"p3767-0001", jetson_module::orin_nx_8gb},
        {"p3767-0003", jetson_module::orin_nano_8gb},
        {"p3767-0004", jetson_module::orin_nano_4gb},
        {"p3767-0005", jetson_module::orin_nano_8gb},
        {"p3701-0000", jetson_module::agx_orin_32gb},
        {"p3701-0004", jetson_module::agx_orin_32gb},
        {"p3701-0005", jetson_module::agx_orin_64gb},
        {"p3701-0008", jetson_module::agx_orin_64gb},
        {"p3668", jetson_module::xavier_nx},
        {"p2888", jetson_module::agx_xavier},
        {"p3448", jetson_module::nano},
        {"p3310", jetson_module::tx2},
        {"p3489", jetson_module::tx2},
    };
    // Device-tree string lists are NUL-separated.
    for (const auto& entry : split(compatible, '\0')) {
        for (const auto& s : skus)
            if (entry.find(s.tag) != std::string::npos) return s.module;
    }
    return jetson_module::unknown;
}

// Falls back to the model string plus MemTotal (the kernel sees a little less than nominal).
jetson_module module_from_model(const std::string& model, uint64_t mem_total_bytes) {
    const double gib = static_cast<double>(mem_total_bytes) / static_cast<double>(k_gib);
    if (contains_nocase(model, "Orin Nano"))
        return gib > 5.0 ? jetson_module::orin_nano_8gb : jetson_module::orin_nano_4gb;
    if (contains_nocase(model, "Orin NX"))
        return gib > 10.0 ? jetson_module::orin_nx_16gb : jetson_module::orin_nx_8gb;
    if (contains_nocase(model, "AGX Orin"))
        return gib > 40.0 ? jetson_module::agx_orin_64gb : jetson_module::agx_orin_32gb;
    if (contains_nocase(model, "Xavier NX")) return jetson_module::xavier_nx;
    if (contains_nocase(model, "AGX Xavier") || contains_nocase(model, "Jetson-AGX"))
        return jetson_module::agx_xavier;
    if (contains_nocase(model, "TX2") || contains_nocase(model, "quill")) return jetson_module::tx2;
    if (contains_nocase(model, "Jetson Nano")) return jetson_module::nano;
    return jetson_module::unknown;
}

// "# R36 (release), REVISION: 3.0, GCID: ..." -> "R36.3.0"
std::string parse_l4t_release(const std::string& text) {
    static const std::regex re(R"(R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+))");
    std::smatch m;
    if (std::regex_search(text, m, re)) return "R" + m[1].str() + "." + m[2].str();
    return {};
}

// nvpmodel.conf declares modes as "< POWER_MODEL ID=0 NAME=15W >" and the default as
// "< PM_CONFIG DEFAULT=0 >"; /var/lib/nvpmodel/status holds the current one as "pmode:0001".
void read_power_mode(const std::filesystem::path& root, jetson_info& info) {
    auto conf = read_text(under_root(root, "/etc/nvpmodel.conf"));
    std::optional<int> current;
    if (auto status = read_text(under_root(root, "/var/lib/nvpmodel/status"))) {
        static const std::regex re(R"(pmode:\s*(\d+))");
        std::smatch m;
        if (std::regex_search(*status, m, re)) current = std::stoi(m[1].str());
    }
    std::string default_name;
    if (conf) {
        static const std::regex default_re(R"(<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>)");
        std::smatch m;
        if (!current && std::regex_search(*conf, m, default_re)) current = std::stoi(m[1].str());
    }
    info.power_mode_id = current;
    if (conf && current) {
        static const std::regex mode_re(R"(<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)\s*>)");
        for (auto it = std::sregex_iterator(conf->begin(), conf->end(), mode_re);
             it != std::sregex_iterator(); ++it) {
            if (std::stoi((*it)[1].str()) == *current) info.power_mode_name = (*it)[2].str();
        }
    }
}

}  // namespace

std::string jetson_module_name(jetson_module m) {
    switch (m) {
        case jetson_module::orin_nano_4gb:
            return "Jetson Orin Nano 4GB";
        case jetson_module::orin_nano_8gb:
            return "Jetson Orin Nano 8GB";
        case jetson_module::orin_nx_8gb:
            return "Jetson Orin NX 8GB";
        case jetson_module::orin_nx_16gb:
            return "Jetson Orin NX 16GB";
        case jetson_module::agx_orin_32gb:
            return "Jetson AGX Orin 32GB";
        case jetson_module::agx_orin_64gb:
            return "Jetson AGX Orin 64GB";
        case jetson_module::xavier_nx:
            return "Jetson Xavier NX";
        case jetson_module::agx_xavier:
            return "Jetson AGX Xavier";
        case jetson_module::nano:
            return "Jetson Nano";
        case jetson_module::tx2:
            return "Jetson TX2";
        case jetson_module::unknown:
            break;
    }
    return "Jetson (unknown module)";
}

std::optional<jetson_info> detect_jetson(const std::filesystem::path& root,
                                         uint64_t mem_total_bytes) {
    auto release_text = read_text(under_root(root, "/etc/nv_tegra_release"));
    auto model = read_line(under_root(root, "/proc/device-tree/model"));
    auto compatible = read_text(under_root(root, "/proc/device-tree/compatible"));
    bool tegra_compatible = compatible && compatible->find("nvidia,tegra") != std::string::npos;
    bool jetson_model =
        model && (contains_nocase(*model, "jetson") || contains_nocase(*model, "tegra"));
    if (!release_text && !tegra_compatible && !jetson_model) return std::nullopt;

    jetson_info info;
    info.board_model = model.value_or("");
    if (release_text) info.l4t_release = parse_l4t_release(*release_text);
    info.module = compatible ? module_from_compatible(*compatible) : jetson_module::unknown;
    if (info.module == jetson_module::unknown)
        info.module = module_from_model(info.board_model, mem_total_bytes);
    info.module_name = jetson_module_name(info.module);
    const auto& spec = spec_of(info.module);
    info.gpu_name = spec.gpu_name;
    info.cc_major = spec.cc_major;
    info.cc_minor = spec.cc_minor;
    info.module_memory_bytes = spec.memory_gib ? spec.memory_gib * k_gib : mem_total_bytes;
    info.system_reserve_bytes = spec.reserve_mib * 1024 * 1024;
    // llama.cpp's CUDA flash-attention kernels need tensor cores of Ampere or newer (Orin);
    // on Volta/Pascal/Maxwell Jetsons the seed's advice (off) stands.
    info.flash_attention_recommended = spec.cc_major >= 8;
    read_power_mode(root, info);
    return info;
}

}  // namespace edgellm::device
