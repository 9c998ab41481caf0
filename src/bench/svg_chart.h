// Inline SVG charts for reports: grouped bar charts with error bars, line charts and time
// series, with "nice" 1-2-5 axis ticks, labels, legends and escaped text. No JavaScript.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::bench::svg {

// Escapes text for XML/HTML content and attribute values (& < > " ').
std::string escape(std::string_view text);

// Axis ticks at a "nice" step (1, 2 or 5 times a power of ten) covering [lo, hi].
struct axis_ticks {
    double lo = 0.0;    // first tick (<= the data minimum)
    double hi = 1.0;    // last tick (>= the data maximum)
    double step = 1.0;
    std::vector<double> values;  // lo, lo+step, ..., hi
};

// Smallest 1-2-5 step >= raw (raw > 0).
double nice_step(double raw);
// About max_ticks intervals at most; an empty or degenerate range is widened around it.
axis_ticks nice_ticks(double lo, double hi, int max_ticks = 5);
// Tick label with as many decimals as the step needs ("0.25", "1.5", "200", "12k").
std::string format_tick(double v, double step);

// One colour per series, distinguishable for colour-blind readers (Okabe-Ito based).
const std::vector<std::string>& palette();

struct bar_series {
    std::string name;
    std::vector<double> values;  // one per category; NaN = no bar
    std::vector<double> errors;  // optional, same length: half-height of the error bar (std)
};

// Bars grouped by category, one bar per series in each group.
struct bar_chart {
    std::string title;
    std::string y_label;
    std::vector<std::string> categories;
    std::vector<bar_series> series;
    std::vector<int> colors;  // optional palette index per series (keeps colours stable across charts)
    int width = 560;
    int height = 320;
};

struct line_series {
    std::string name;
    std::vector<double> x;
    std::vector<double> y;  // same length as x; points with NaN are skipped
};

struct line_chart {
    std::string title;
    std::string x_label;
    std::string y_label;
    std::vector<line_series> series;
    std::vector<int> colors;  // optional palette index per series
    bool log2_x = false;     // x on a log2 scale with a tick at each x value (batch sizes)
    bool y_from_zero = true;
    bool markers = true;     // dots at data points (off for dense time series)
    int width = 560;
    int height = 320;
};

// Each returns one <svg> element (class "chart"); every series is a <g class="series"
// data-series="name">. A chart without data says so instead of drawing empty axes.
std::string render_bar_chart(const bar_chart& chart);
std::string render_line_chart(const line_chart& chart);

}  // namespace edgellm::bench::svg
