// Monotonic time helpers for measurements (milliseconds as double).
#pragma once
#include <chrono>

namespace edgellm {

inline double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Measures elapsed wall time since construction or the last reset().
class stopwatch {
public:
    stopwatch() : start_ms_(now_ms()) {}
    void reset() { start_ms_ = now_ms(); }
    double elapsed_ms() const { return now_ms() - start_ms_; }

private:
    double start_ms_;
};

}  // namespace edgellm
