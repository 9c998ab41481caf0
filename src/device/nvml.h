// NVIDIA GPU facts and live readings through an injectable interface: the real one loads NVML
// (libnvidia-ml.so.1) at run time with dlopen, so edgellm has no link dependency on the driver;
// a fixture-backed fake answers the same questions in tests.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace edgellm::device {

struct gpu_info {
    int index = 0;
    std::string name;  // "NVIDIA GeForce RTX 4090"
    std::string uuid;
    int cc_major = 0, cc_minor = 0;  // CUDA compute capability
    uint64_t memory_total_bytes = 0;
    uint64_t memory_free_bytes = 0;
};

// One reading of a GPU's live state; a field is absent when the driver does not report it.
struct gpu_reading {
    std::optional<uint64_t> memory_used_bytes;
    std::optional<double> utilization_percent;
    std::optional<double> temperature_c;
    std::optional<double> power_w;
};

class nvml_interface {
  public:
    virtual ~nvml_interface() = default;
    // False when the library or driver is missing; every other call then returns nothing.
    virtual bool available() const = 0;
    virtual std::string driver_version() const = 0;  // "550.54.14"
    virtual int cuda_driver_version() const = 0;     // 12040 = CUDA 12.4; 0 when unknown
    virtual int device_count() const = 0;
    virtual std::optional<gpu_info> device(int index) const = 0;
    virtual gpu_reading read(int index) const = 0;
    // Why available() is false ("libnvidia-ml.so.1 not found"), for the device report.
    virtual std::string unavailable_reason() const { return {}; }
};

// "12.4" from 12040.
std::string cuda_version_string(int cuda_driver_version);

// The real NVML, loaded lazily; never throws (a missing driver is simply "not available").
std::unique_ptr<nvml_interface> make_system_nvml();

// Answers from plain data, for tests and fixtures.
struct fake_gpu {
    gpu_info info;
    gpu_reading reading;
};
class fake_nvml final : public nvml_interface {
  public:
    fake_nvml(std::string driver_version, int cuda_driver_version, std::vector<fake_gpu> gpus)
        : driver_(std::move(driver_version)), cuda_(cuda_driver_version), gpus_(std::move(gpus)) {}
    bool available() const override { return true; }
    std::string driver_version() const override { return driver_; }
    int cuda_driver_version() const override { return cuda_; }
    int device_count() const override { return static_cast<int>(gpus_.size()); }
    std::optional<gpu_info> device(int index) const override;
    gpu_reading read(int index) const override;
    // Lets a test change a GPU's live reading between samples.
    void set_reading(int index, const gpu_reading& r);

  private:
    std::string driver_;
    int cuda_;
    std::vector<fake_gpu> gpus_;
};

// Loads a fake from a JSON fixture:
// {"driver_version": "550.54.14", "cuda_driver_version": 12040,
//  "gpus": [{"name": "...", "uuid": "...", "compute_capability": "8.9",
//            "memory_total_bytes": N, "memory_free_bytes": N, "memory_used_bytes": N,
//            "utilization_percent": x, "temperature_c": x, "power_w": x}]}
// Throws edgellm::error naming the file and field on malformed input.
std::unique_ptr<fake_nvml> load_nvml_fixture(const std::filesystem::path& json_path);

}  // namespace edgellm::device
