// Apple Silicon detection through sysctl; compiled to a stub on every other platform.
#include "device/device.h"

#ifdef __APPLE__
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

namespace edgellm::device {

#ifdef __APPLE__
namespace {
std::string sysctl_string(const char* name) {
    size_t size = 0;
    if (sysctlbyname(name, nullptr, &size, nullptr, 0) != 0 || size == 0) return {};
    std::string s(size, '\0');
    if (sysctlbyname(name, s.data(), &size, nullptr, 0) != 0) return {};
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
}
template <typename T>
T sysctl_value(const char* name) {
    T v{};
    size_t size = sizeof v;
    if (sysctlbyname(name, &v, &size, nullptr, 0) != 0) return T{};
    return v;
}
}  // namespace

std::optional<apple_info> detect_apple_silicon() {
    if (sysctl_value<int32_t>("hw.optional.arm64") != 1) return std::nullopt;
    apple_info a;
    a.chip = sysctl_string("machdep.cpu.brand_string");
    a.memory_bytes = sysctl_value<uint64_t>("hw.memsize");
    a.n_performance_cores = sysctl_value<int32_t>("hw.perflevel0.physicalcpu");
    a.n_efficiency_cores = sysctl_value<int32_t>("hw.perflevel1.physicalcpu");
    return a;
}
#else
std::optional<apple_info> detect_apple_silicon() {
    return std::nullopt;
}
#endif

}  // namespace edgellm::device
