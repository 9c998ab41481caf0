// Inline SVG bar and line charts (see svg_chart.h). Layout is computed in pixels of the
// viewBox; text widths are estimated from character counts since no font metrics exist here.
#include "bench/svg_chart.h"

#include "bench/result.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace edgellm::bench::svg {

namespace {

constexpr double tick_font_px = 11.0;
constexpr double char_w = 0.6;  // average glyph width as a fraction of the font size
const char* const font_family = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
const char* const text_color = "#374151";
const char* const muted_color = "#6b7280";
const char* const grid_color = "#e5e7eb";
const char* const axis_color = "#9ca3af";

size_t n_code_points(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

double text_width(std::string_view s, double font_px) { return static_cast<double>(n_code_points(s)) * font_px * char_w; }

// Shortens to at most max_chars code points, ending in an ellipsis, never splitting UTF-8.
std::string truncate(const std::string& s, size_t max_chars) {
    if (n_code_points(s) <= max_chars) return s;
    if (max_chars == 0) return "";
    size_t kept = 0, i = 0;
    for (; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
            if (kept == max_chars - 1) break;
            ++kept;
        }
    }
    return s.substr(0, i) + "\u2026";
}

std::string px(double v) { return fmt::format("{:.1f}", v); }

// Three significant digits for value labels and tooltips.
std::string short_value(double v) {
    if (!std::isfinite(v)) return "-";
    double a = std::fabs(v);
    if (a >= 100000) return fmt::format("{:.0f}k", v / 1000);
    if (a >= 100) return fmt::format("{:.0f}", v);
    if (a >= 10) return fmt::format("{:.1f}", v);
    return fmt::format("{:.2f}", v);
}

std::string color_of(const std::vector<int>& colors, size_t i) {
    const auto& p = palette();
    size_t idx = i < colors.size() && colors[i] >= 0 ? static_cast<size_t>(colors[i]) : i;
    return p[idx % p.size()];
}

struct legend_item {
    std::string name;
    std::string color;
    double x = 0, row = 0;
};

// Lays legend items out in rows that fit `avail_w`; returns the number of rows.
int layout_legend(std::vector<legend_item>& items, double avail_w) {
    double x = 0;
    int row = 0;
    for (auto& it : items) {
        double w = 14 + text_width(truncate(it.name, 64), tick_font_px) + 18;
        if (x > 0 && x + w > avail_w) {
            x = 0;
            ++row;
        }
        it.x = x;
        it.row = row;
        x += w;
    }
    return items.empty() ? 0 : row + 1;
}

std::string render_legend(const std::vector<legend_item>& items, double x0, double y0) {
    std::string out = "<g class=\"legend\">";
    for (const auto& it : items) {
        double x = x0 + it.x, y = y0 + it.row * 18;
        out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" rx=\"2\" fill=\"{}\"/>", px(x), px(y - 9),
                           it.color);
        out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\">{}</text>", px(x + 14), px(y),
                           text_color, escape(truncate(it.name, 64)));
    }
    return out + "</g>";
}

std::string open_svg(const char* cls, int w, int h, const std::string& title) {
    return fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart {}\" viewBox=\"0 0 {} {}\" width=\"{}\" "
        "height=\"{}\" role=\"img\" aria-label=\"{}\" font-family=\"{}\"><title>{}</title>"
        "<rect class=\"background\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>"
        "<text class=\"chart-title\" x=\"16\" y=\"22\" font-size=\"14\" font-weight=\"600\" fill=\"#111827\">{}</text>",
        cls, w, h, w, h, escape(title), font_family, escape(title), w, h, escape(title));
}

std::string no_data(const char* cls, int w, int h, const std::string& title) {
    return open_svg(cls, w, h, title) +
           fmt::format("<text class=\"no-data\" x=\"{}\" y=\"{}\" font-size=\"13\" fill=\"{}\" "
                       "text-anchor=\"middle\">no data</text></svg>",
                       w / 2, h / 2, muted_color);
}

// Horizontal grid lines, y tick labels and the rotated y axis title.
std::string y_axis(const axis_ticks& t, double x0, double x1, double y0, double y1, const std::string& label,
                   double label_x) {
    std::string out = "<g class=\"y-axis\">";
    for (double v : t.values) {
        double y = y1 - (v - t.lo) / (t.hi - t.lo) * (y1 - y0);
        out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\"/>", px(x0), px(x1), px(y), px(y),
                           grid_color);
        out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\" text-anchor=\"end\">{}</text>",
                           px(x0 - 6), px(y + 4), muted_color, escape(format_tick(v, t.step)));
    }
    if (!label.empty()) {
        double cy = (y0 + y1) / 2;
        out += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 {} {})\">{}</text>",
            px(label_x), px(cy), text_color, px(label_x), px(cy), escape(label));
    }
    return out + "</g>";
}

double y_tick_label_width(const axis_ticks& t) {
    double w = 0;
    for (double v : t.values) w = std::max(w, text_width(format_tick(v, t.step), tick_font_px));
    return w;
}

}  // namespace

std::string escape(std::string_view raw) {
    // Reports must stay valid UTF-8 whatever a model or a user typed.
    const std::string text = sanitize_utf8(raw);
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default:
                // XML forbids most control characters even when escaped; drop them.
                if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\r' && c != '\t') break;
                out += c;
        }
    }
    return out;
}

double nice_step(double raw) {
    if (!(raw > 0.0) || !std::isfinite(raw)) return 1.0;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double f = raw / mag;
    // Small tolerance so 2.0000000001 (floating-point noise) still counts as 2.
    double nf = f <= 1.0 + 1e-9 ? 1.0 : f <= 2.0 + 1e-9 ? 2.0 : f <= 5.0 + 1e-9 ? 5.0 : 10.0;
    return nf * mag;
}

axis_ticks nice_ticks(double lo, double hi, int max_ticks) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0.0, hi = 1.0;
    if (lo > hi) std::swap(lo, hi);
    if (hi == lo) {
        double pad = lo == 0.0 ? 1.0 : std::fabs(lo) * 0.1;
        if (lo >= 0.0 && lo - pad < 0.0) {
            hi = lo + pad;  // keep a non-negative axis non-negative
        } else {
            lo -= pad;
            hi += pad;
        }
    }
    max_ticks = std::max(max_ticks, 1);
    axis_ticks t;
    t.step = nice_step((hi - lo) / max_ticks);
    double k_lo = std::floor(lo / t.step + 1e-9);
    double k_hi = std::ceil(hi / t.step - 1e-9);
    t.lo = k_lo * t.step;
    t.hi = k_hi * t.step;
    for (double k = k_lo; k <= k_hi + 0.5; k += 1.0) t.values.push_back(k * t.step);
    return t;
}

std::string format_tick(double v, double step) {
    if (std::fabs(v) < std::fabs(step) * 1e-9) return "0";  // no "-0" or "0k"
    const char* suffix = "";
    if (step >= 1e6 && std::fabs(step) > 0) {
        v /= 1e6;
        step /= 1e6;
        suffix = "M";
    } else if (step >= 1e3) {
        v /= 1e3;
        step /= 1e3;
        suffix = "k";
    }
    int decimals = step >= 1.0 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    return fmt::format("{:.{}f}{}", v, std::clamp(decimals, 0, 9), suffix);
}

const std::vector<std::string>& palette() {
    static const std::vector<std::string> colors = {"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
                                                    "#56B4E9", "#8C6D31", "#332288", "#999933", "#666666"};
    return colors;
}

std::string render_bar_chart(const bar_chart& c) {
    double vmax = -std::numeric_limits<double>::infinity(), vmin = 0.0;
    size_t n_bars = 0;
    for (const auto& s : c.series)
        for (size_t i = 0; i < s.values.size() && i < c.categories.size(); ++i) {
            double v = s.values[i];
            if (!std::isfinite(v)) continue;
            double e = i < s.errors.size() && std::isfinite(s.errors[i]) ? std::fabs(s.errors[i]) : 0.0;
            vmax = std::max(vmax, v + e);
            vmin = std::min(vmin, v >= 0.0 ? 0.0 : v - e);
            ++n_bars;
        }
    if (n_bars == 0) return no_data("bar-chart", c.width, c.height, c.title);

    const double w = c.width, h = c.height;
    axis_ticks yt = nice_ticks(vmin, std::max(vmax, 0.0));
    std::vector<legend_item> legend;
    for (size_t s = 0; s < c.series.size(); ++s) legend.push_back({c.series[s].name, color_of(c.colors, s)});
    double left = 16 + 14 + y_tick_label_width(yt) + 10;
    int legend_rows = layout_legend(legend, w - left - 16);
    double x0 = left, x1 = w - 16, y0 = 40, y1 = h - 28 - legend_rows * 18 - (legend_rows ? 6 : 0);

    std::string out = open_svg("bar-chart", c.width, c.height, c.title);
    out += y_axis(yt, x0, x1, y0, y1, c.y_label, 18);
    auto ypx = [&](double v) { return y1 - (v - yt.lo) / (yt.hi - yt.lo) * (y1 - y0); };
    double zero_y = ypx(std::clamp(0.0, yt.lo, yt.hi));

    const double n_cat = static_cast<double>(c.categories.size());
    const double n_ser = static_cast<double>(std::max<size_t>(c.series.size(), 1));
    const double group_w = (x1 - x0) / n_cat;
    const double inner_w = group_w * 0.8;
    const double slot_w = inner_w / n_ser;
    const double bar_w = std::min(slot_w * 0.88, 64.0);
    const bool value_labels = n_bars <= 16 && bar_w >= 24;

    for (size_t s = 0; s < c.series.size(); ++s) {
        const auto& ser = c.series[s];
        std::string color = color_of(c.colors, s);
        out += fmt::format("<g class=\"series\" data-series=\"{}\">", escape(ser.name));
        for (size_t i = 0; i < ser.values.size() && i < c.categories.size(); ++i) {
            double v = ser.values[i];
            if (!std::isfinite(v)) continue;
            double e = i < ser.errors.size() && std::isfinite(ser.errors[i]) ? std::fabs(ser.errors[i]) : 0.0;
            double cx = x0 + group_w * static_cast<double>(i) + (group_w - inner_w) / 2 + slot_w * (s + 0.5);
            double top = ypx(v);
            double y_top = std::min(top, zero_y), bar_h = std::fabs(zero_y - top);
            std::string tip = fmt::format("{} / {}: {}", ser.name, c.categories[i], short_value(v));
            if (e > 0) tip += " \u00b1 " + short_value(e);
            out += fmt::format("<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\" fill=\"{}\">"
                               "<title>{}</title></rect>",
                               px(cx - bar_w / 2), px(y_top), px(bar_w), px(std::max(bar_h, 0.5)), color, escape(tip));
            double label_y = top - 5;
            if (e > 0) {
                // A non-negative quantity (time, speed, memory) cannot go below zero: clip the whisker.
                double lower = v >= 0.0 ? std::max(0.0, v - e) : v - e;
                double ya = ypx(lower), yb = ypx(v + e), cap = std::min(bar_w * 0.35, 7.0);
                // The lower cap is left off when clipped so it does not claim the spread ends at 0.
                std::string lower_cap = lower == v - e ? fmt::format("M{} {}H{}", px(cx - cap), px(ya), px(cx + cap)) : "";
                out += fmt::format(
                    "<path class=\"error-bar\" d=\"M{0} {1}V{2}M{3} {2}H{4}{5}\" stroke=\"#1f2937\" "
                    "stroke-width=\"1.3\" fill=\"none\"/>",
                    px(cx), px(ya), px(yb), px(cx - cap), px(cx + cap), lower_cap);
                label_y = yb - 5;
            }
            if (value_labels)
                out += fmt::format("<text class=\"value\" x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{}\" "
                                   "text-anchor=\"middle\">{}</text>",
                                   px(cx), px(std::max(label_y, y0 - 2)), text_color, short_value(v));
        }
        out += "</g>";
    }
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\"/>", px(x0), px(x1), px(zero_y),
                       px(zero_y), axis_color);
    size_t max_chars = static_cast<size_t>(std::max(3.0, group_w / (tick_font_px * char_w)));
    out += "<g class=\"x-axis\">";
    for (size_t i = 0; i < c.categories.size(); ++i) {
        double cx = x0 + group_w * (static_cast<double>(i) + 0.5);
        out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\" text-anchor=\"middle\">{}<title>{}"
                           "</title></text>",
                           px(cx), px(y1 + 16), text_color, escape(truncate(c.categories[i], max_chars)),
                           escape(c.categories[i]));
    }
    out += "</g>";
    out += render_legend(legend, x0, y1 + 40);
    return out + "</svg>";
}

std::string render_line_chart(const line_chart& c) {
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    std::set<double> xs;
    size_t n_points = 0;
    auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!c.log2_x || x > 0); };
    for (const auto& s : c.series)
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!usable(s.x[i], s.y[i])) continue;
            xmin = std::min(xmin, s.x[i]);
            xmax = std::max(xmax, s.x[i]);
            ymin = std::min(ymin, s.y[i]);
            ymax = std::max(ymax, s.y[i]);
            xs.insert(s.x[i]);
            ++n_points;
        }
    if (n_points == 0) return no_data("line-chart", c.width, c.height, c.title);

    const double w = c.width, h = c.height;
    axis_ticks yt = nice_ticks(c.y_from_zero ? std::min(0.0, ymin) : ymin, ymax);
    // x ticks: each distinct value on a log2 axis (few, e.g. batch sizes), else nice ticks.
    std::vector<double> x_ticks;
    double xlo, xhi, x_step = 1.0;
    auto xf = [&](double x) { return c.log2_x ? std::log2(x) : x; };
    if (c.log2_x) {
        if (xs.size() <= 12) {
            x_ticks.assign(xs.begin(), xs.end());
        } else {
            for (double p = std::exp2(std::floor(std::log2(xmin))); p <= xmax * 1.0001; p *= 2) x_ticks.push_back(p);
        }
        xlo = std::log2(xmin);
        xhi = std::log2(xmax);
        if (xhi == xlo) xlo -= 1, xhi += 1;
    } else {
        axis_ticks xt = nice_ticks(xmin, xmax, 6);
        x_ticks = xt.values;
        x_step = xt.step;
        xlo = xt.lo;
        xhi = xt.hi;
    }

    std::vector<legend_item> legend;
    for (size_t s = 0; s < c.series.size(); ++s) legend.push_back({c.series[s].name, color_of(c.colors, s)});
    double left = 16 + 14 + y_tick_label_width(yt) + 10;
    int legend_rows = layout_legend(legend, w - left - 16);
    double x0 = left, x1 = w - 20, y0 = 40;
    double y1 = h - 26 - (c.x_label.empty() ? 0 : 16) - legend_rows * 18 - (legend_rows ? 8 : 0);
    auto xpx = [&](double x) { return x0 + (xf(x) - xlo) / (xhi - xlo) * (x1 - x0); };
    auto ypx = [&](double v) { return y1 - (v - yt.lo) / (yt.hi - yt.lo) * (y1 - y0); };

    std::string out = open_svg("line-chart", c.width, c.height, c.title);
    out += y_axis(yt, x0, x1, y0, y1, c.y_label, 18);
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\"/>", px(x0), px(x1), px(y1), px(y1),
                       axis_color);
    out += "<g class=\"x-axis\">";
    for (double t : x_ticks) {
        double x = xpx(t);
        std::string label = c.log2_x ? fmt::format("{}", t) : format_tick(t, x_step);
        out += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{3}\"/>", px(x), px(y1),
                           px(y1 + 4), axis_color);
        out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\" text-anchor=\"middle\">{}</text>",
                           px(x), px(y1 + 16), muted_color, escape(label));
    }
    if (!c.x_label.empty())
        out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\" text-anchor=\"middle\">{}</text>",
                           px((x0 + x1) / 2), px(y1 + 32), text_color, escape(c.x_label));
    out += "</g>";

    for (size_t s = 0; s < c.series.size(); ++s) {
        const auto& ser = c.series[s];
        std::string color = color_of(c.colors, s);
        std::vector<std::pair<double, double>> pts;
        for (size_t i = 0; i < ser.x.size() && i < ser.y.size(); ++i)
            if (usable(ser.x[i], ser.y[i])) pts.emplace_back(ser.x[i], ser.y[i]);
        std::sort(pts.begin(), pts.end());
        out += fmt::format("<g class=\"series\" data-series=\"{}\">", escape(ser.name));
        if (pts.size() > 1) {
            std::string d;
            for (size_t i = 0; i < pts.size(); ++i)
                d += fmt::format("{}{} {}", i ? "L" : "M", px(xpx(pts[i].first)), px(ypx(pts[i].second)));
            out += fmt::format("<path class=\"line\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" "
                               "stroke-linejoin=\"round\" stroke-linecap=\"round\"><title>{}</title></path>",
                               d, color, escape(ser.name));
        }
        if (c.markers || pts.size() == 1)
            for (const auto& [x, y] : pts)
                out += fmt::format("<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{}\" stroke=\"#ffffff\" "
                                   "stroke-width=\"1.5\"><title>{}: {} \u2192 {}</title></circle>",
                                   px(xpx(x)), px(ypx(y)), color, escape(ser.name), short_value(x), short_value(y));
        out += "</g>";
    }
    out += render_legend(legend, x0, y1 + (c.x_label.empty() ? 36 : 52));
    return out + "</svg>";
}

}  // namespace edgellm::bench::svg
