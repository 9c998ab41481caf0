// NVML loaded with dlopen (no link dependency on the NVIDIA driver), and the fixture-backed
// fake used by tests (see nvml.h).
#include "device/nvml.h"

#include <dlfcn.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace edgellm::device {

std::string cuda_version_string(int v) {
    if (v <= 0) return {};
    return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

namespace {

// The few NVML declarations we need, as in nvml.h of the driver (stable C ABI).
using nvml_return = int;  // NVML_SUCCESS == 0
using nvml_device = struct nvml_device_st*;
struct nvml_memory {
    unsigned long long total, free, used;
};
struct nvml_utilization {
    unsigned int gpu, memory;
};
constexpr int k_nvml_temperature_gpu = 0;

class system_nvml final : public nvml_interface {
  public:
    system_nvml() {
        handle_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!handle_) {
            reason_ = "libnvidia-ml.so.1 not found (no NVIDIA driver)";
            return;
        }
        bool ok = sym(init_, "nvmlInit_v2") && sym(shutdown_, "nvmlShutdown") &&
                  sym(driver_version_, "nvmlSystemGetDriverVersion") &&
                  sym(count_, "nvmlDeviceGetCount_v2") &&
                  sym(by_index_, "nvmlDeviceGetHandleByIndex_v2") &&
                  sym(name_, "nvmlDeviceGetName") && sym(memory_, "nvmlDeviceGetMemoryInfo");
        // Optional entry points: older drivers lack some; their fields stay empty.
        sym(cuda_version_, "nvmlSystemGetCudaDriverVersion");
        sym(uuid_, "nvmlDeviceGetUUID");
        sym(cc_, "nvmlDeviceGetCudaComputeCapability");
        sym(util_, "nvmlDeviceGetUtilizationRates");
        sym(temp_, "nvmlDeviceGetTemperature");
        sym(power_, "nvmlDeviceGetPowerUsage");
        if (!ok) {
            reason_ = "libnvidia-ml.so.1 lacks required NVML functions";
            return;
        }
        nvml_return rc = init_();
        if (rc != 0) {
            reason_ = "nvmlInit failed with NVML error " + std::to_string(rc);
            return;
        }
        initialised_ = true;
    }
    ~system_nvml() override {
        if (initialised_) shutdown_();
        if (handle_) dlclose(handle_);
    }
    system_nvml(const system_nvml&) = delete;
    system_nvml& operator=(const system_nvml&) = delete;

    bool available() const override { return initialised_; }
    std::string unavailable_reason() const override { return reason_; }

    std::string driver_version() const override {
        if (!initialised_) return {};
        char buf[96] = {};
        if (driver_version_(buf, sizeof buf) != 0) return {};
        return buf;
    }
    int cuda_driver_version() const override {
        int v = 0;
        if (!initialised_ || !cuda_version_ || cuda_version_(&v) != 0) return 0;
        return v;
    }
    int device_count() const override {
        unsigned int n = 0;
        if (!initialised_ || count_(&n) != 0) return 0;
        return static_cast<int>(n);
    }
    std::optional<gpu_info> device(int index) const override {
        nvml_device dev = handle(index);
        if (!dev) return std::nullopt;
        gpu_info g;
        g.index = index;
        char buf[96] = {};
        if (name_(dev, buf, sizeof buf) == 0) g.name = buf;
        char ubuf[96] = {};
        if (uuid_ && uuid_(dev, ubuf, sizeof ubuf) == 0) g.uuid = ubuf;
        if (cc_) cc_(dev, &g.cc_major, &g.cc_minor);
        nvml_memory mem{};
        if (memory_(dev, &mem) == 0) {
            g.memory_total_bytes = mem.total;
            g.memory_free_bytes = mem.free;
        }
        return g;
    }
    gpu_reading read(int index) const override {
        gpu_reading r;
        nvml_device dev = handle(index);
        if (!dev) return r;
        nvml_memory mem{};
        if (memory_(dev, &mem) == 0) r.memory_used_bytes = mem.used;
        nvml_utilization u{};
        if (util_ && util_(dev, &u) == 0) r.utilization_percent = u.gpu;
        unsigned int t = 0;
        if (temp_ && temp_(dev, k_nvml_temperature_gpu, &t) == 0) r.temperature_c = t;
        unsigned int mw = 0;
        if (power_ && power_(dev, &mw) == 0) r.power_w = mw / 1000.0;
        return r;
    }

  private:
    template <typename F>
    bool sym(F& fn, const char* name) {
        fn = reinterpret_cast<F>(dlsym(handle_, name));
        return fn != nullptr;
    }
    nvml_device handle(int index) const {
        if (!initialised_ || index < 0) return nullptr;
        nvml_device dev = nullptr;
        if (by_index_(static_cast<unsigned int>(index), &dev) != 0) return nullptr;
        return dev;
    }

    void* handle_ = nullptr;
    bool initialised_ = false;
    std::string reason_;
    nvml_return (*init_)() = nullptr;
    nvml_return (*shutdown_)() = nullptr;
    nvml_return (*driver_version_)(char*, unsigned int) = nullptr;
    nvml_return (*cuda_version_)(int*) = nullptr;
    nvml_return (*count_)(unsigned int*) = nullptr;
    nvml_return (*by_index_)(unsigned int, nvml_device*) = nullptr;
    nvml_return (*name_)(nvml_device, char*, unsigned int) = nullptr;
    nvml_return (*uuid_)(nvml_device, char*, unsigned int) = nullptr;
    nvml_return (*memory_)(nvml_device, nvml_memory*) = nullptr;
    nvml_return (*cc_)(nvml_device, int*, int*) = nullptr;
    nvml_return (*util_)(nvml_device, nvml_utilization*) = nullptr;
    nvml_return (*temp_)(nvml_device, int, unsigned int*) = nullptr;
    nvml_return (*power_)(nvml_device, unsigned int*) = nullptr;
};

template <typename T>
std::optional<T> opt_field(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    try {
        return j[key].get<T>();
    } catch (const nlohmann::json::exception&) {
        throw error(where + ": field '" + key + "' has the wrong type");
    }
}

}  // namespace

std::unique_ptr<nvml_interface> make_system_nvml() {
    return std::make_unique<system_nvml>();
}

std::optional<gpu_info> fake_nvml::device(int index) const {
    if (index < 0 || index >= device_count()) return std::nullopt;
    gpu_info g = gpus_[static_cast<size_t>(index)].info;
    g.index = index;
    return g;
}

gpu_reading fake_nvml::read(int index) const {
    if (index < 0 || index >= device_count()) return {};
    return gpus_[static_cast<size_t>(index)].reading;
}

void fake_nvml::set_reading(int index, const gpu_reading& r) {
    if (index < 0 || index >= device_count())
        throw error("fake_nvml: no GPU " + std::to_string(index));
    gpus_[static_cast<size_t>(index)].reading = r;
}

std::unique_ptr<fake_nvml> load_nvml_fixture(const std::filesystem::path& json_path) {
    std::ifstream in(json_path);
    if (!in) throw error("cannot read NVML fixture " + json_path.string());
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw error("NVML fixture " + json_path.string() + " is not valid JSON: " + e.what());
    }
    const std::string where = "NVML fixture " + json_path.string();
    if (!j.is_object()) throw error(where + ": expected a JSON object");
    std::string driver = opt_field<std::string>(j, "driver_version", where).value_or("");
    int cuda = opt_field<int>(j, "cuda_driver_version", where).value_or(0);
    std::vector<fake_gpu> gpus;
    if (j.contains("gpus")) {
        if (!j["gpus"].is_array()) throw error(where + ": 'gpus' must be an array");
        int index = 0;
        for (const auto& g : j["gpus"]) {
            const std::string gwhere = where + " gpus[" + std::to_string(index) + "]";
            if (!g.is_object()) throw error(gwhere + ": expected an object");
            fake_gpu f;
            f.info.index = index;
            f.info.name = opt_field<std::string>(g, "name", gwhere).value_or("NVIDIA GPU");
            f.info.uuid = opt_field<std::string>(g, "uuid", gwhere).value_or("");
            if (auto cc = opt_field<std::string>(g, "compute_capability", gwhere)) {
                auto dot = cc->find('.');
                try {
                    f.info.cc_major = std::stoi(cc->substr(0, dot));
                    f.info.cc_minor = dot == std::string::npos ? 0 : std::stoi(cc->substr(dot + 1));
                } catch (const std::exception&) {
                    throw error(gwhere + ": compute_capability '" + *cc + "' is not like \"8.9\"");
                }
            }
            f.info.memory_total_bytes =
                opt_field<uint64_t>(g, "memory_total_bytes", gwhere).value_or(0);
            f.info.memory_free_bytes = opt_field<uint64_t>(g, "memory_free_bytes", gwhere)
                                           .value_or(f.info.memory_total_bytes);
            if (f.info.memory_free_bytes > f.info.memory_total_bytes)
                throw error(gwhere + ": memory_free_bytes exceeds memory_total_bytes");
            f.reading.memory_used_bytes =
                opt_field<uint64_t>(g, "memory_used_bytes", gwhere)
                    .value_or(f.info.memory_total_bytes - f.info.memory_free_bytes);
            f.reading.utilization_percent = opt_field<double>(g, "utilization_percent", gwhere);
            f.reading.temperature_c = opt_field<double>(g, "temperature_c", gwhere);
            f.reading.power_w = opt_field<double>(g, "power_w", gwhere);
            gpus.push_back(std::move(f));
            ++index;
        }
    }
    return std::make_unique<fake_nvml>(std::move(driver), cuda, std::move(gpus));
}

}  // namespace edgellm::device
