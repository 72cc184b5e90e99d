// `moe profile --html FILE`: one self-contained page (inline SVG and CSS, no scripts, no network).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "src/core/strformat.h"
#include "src/cli/commands/profile_report.h"

namespace moe::cli {

namespace {

constexpr int64_t kMaxPoints = 400;     // points per line series
constexpr int64_t kMaxHeatColumns = 200;
const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// Bucket means, so a long run stays a small page.
Series downsample(Series s) {
  const int64_t n = int64_t(s.x.size());
  if (n <= kMaxPoints) return s;
  Series d{s.name, {}, {}};
  for (int64_t c = 0; c < kMaxPoints; ++c) {
    const int64_t b = c * n / kMaxPoints, e = (c + 1) * n / kMaxPoints;
    double x = 0, y = 0;
    for (int64_t i = b; i < e; ++i) {
      x += s.x[size_t(i)];
      y += s.y[size_t(i)];
    }
    d.x.push_back(x / double(e - b));
    d.y.push_back(y / double(e - b));
  }
  return d;
}

std::string line_chart(const std::string& title, const std::string& y_label, std::vector<Series> series) {
  const double W = 640, H = 240, l = 60, r = 130, t = 28, b = 34;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (Series& s : series) {
    s = downsample(std::move(s));
    for (size_t i = 0; i < s.x.size(); ++i) {
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      if (std::isfinite(s.y[i])) y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  }
  std::string svg = strformat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">", W, H);
  svg += strformat("<text x=\"%.0f\" y=\"18\" class=\"t\">%s</text>", l, escape(title).c_str());
  if (x0 > x1 || y0 > y1) return svg + "<text x=\"60\" y=\"60\">no data</text></svg>";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + (y0 == 0 ? 1 : std::fabs(y0) * 0.1), y0 -= (y1 - y0) * 0.5;
  auto px = [&](double x) { return l + (x - x0) / (x1 - x0) * (W - l - r); };
  auto py = [&](double y) { return H - b - (y - y0) / (y1 - y0) * (H - t - b); };
  svg += strformat("<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" class=\"frame\"/>", l, t, W - l - r, H - t - b);
  for (int k = 0; k <= 4; ++k) {
    const double y = y0 + (y1 - y0) * k / 4.0;
    svg += strformat("<text x=\"%.0f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%.3g</text>", l - 4, py(y) + 4, y);
    const double x = x0 + (x1 - x0) * k / 4.0;
    svg += strformat("<text x=\"%.1f\" y=\"%.0f\" class=\"a\" text-anchor=\"middle\">%.0f</text>", px(x), H - b + 14, x);
  }
  svg += strformat("<text x=\"%.0f\" y=\"%.0f\" class=\"a\" text-anchor=\"middle\">step</text>", l + (W - l - r) / 2,
             H - 4);
  svg += strformat("<text x=\"12\" y=\"%.0f\" class=\"a\" transform=\"rotate(-90 12 %.0f)\" text-anchor=\"middle\">%s</text>",
             H / 2, H / 2, escape(y_label).c_str());
  for (size_t k = 0; k < series.size(); ++k) {
    const char* color = kPalette[k % 8];
    std::string pts;
    for (size_t i = 0; i < series[k].x.size(); ++i)
      if (std::isfinite(series[k].y[i])) pts += strformat("%.1f,%.1f ", px(series[k].x[i]), py(series[k].y[i]));
    svg += strformat("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"/>", color, pts.c_str());
    svg += strformat("<text x=\"%.0f\" y=\"%.0f\" class=\"a\" fill=\"%s\">%s</text>", W - r + 8, t + 12 + 14.0 * double(k),
               color, escape(series[k].name).c_str());
  }
  return svg + "</svg>";
}

// Diverging colour for a ratio to the even share: blue below 1, white at 1, red above (log2 scale, +-2).
std::string ratio_color(double ratio) {
  const double v = std::clamp(std::log2(std::max(ratio, 1e-3)) / 2.0, -1.0, 1.0);
  const int hi = 247, lo_r = v < 0 ? 59 : 180, lo_g = v < 0 ? 76 : 4, lo_b = v < 0 ? 192 : 38;
  const double a = std::fabs(v);
  return strformat("#%02x%02x%02x", int(hi + (lo_r - hi) * a), int(hi + (lo_g - hi) * a), int(hi + (lo_b - hi) * a));
}

std::string heatmap(const std::string& title, const std::vector<std::vector<double>>& cells,
                    const std::vector<std::string>& row_labels, const std::string& x_note,
                    const std::vector<std::string>& tips) {
  const size_t R = cells.size(), C = R ? cells[0].size() : 0;
  const double l = 60, t = 28, cw = std::max(2.0, std::min(24.0, 600.0 / double(std::max<size_t>(C, 1))));
  const double ch = std::max(4.0, std::min(20.0, 320.0 / double(std::max<size_t>(R, 1))));
  const double W = l + cw * double(C) + 20, H = t + ch * double(R) + 30;
  std::string svg = strformat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">", std::max(W, 320.0), H);
  svg += strformat("<text x=\"%.0f\" y=\"18\" class=\"t\">%s</text>", l, escape(title).c_str());
  for (size_t r = 0; r < R; ++r) {
    if (ch >= 9 || r % size_t(std::ceil(9.0 / ch)) == 0)
      svg += strformat("<text x=\"%.0f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%s</text>", l - 4,
                 t + ch * double(r) + ch / 2 + 4, escape(row_labels[r]).c_str());
    for (size_t c = 0; c < C; ++c)
      svg += strformat("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s</title></rect>",
                 l + cw * double(c), t + ch * double(r), cw, ch, ratio_color(cells[r][c]).c_str(),
                 escape(tips.empty() ? strformat("%.2fx", cells[r][c]) : tips[r * C + c]).c_str());
  }
  svg += strformat("<text x=\"%.0f\" y=\"%.0f\" class=\"a\">%s</text>", l, H - 8, escape(x_note).c_str());
  return svg + "</svg>";
}

std::string phase_bars(const profile::ProfileSummary& s) {
  double step = 0, mx = 0;
  for (size_t p = 0; p < s.phase_names.size(); ++p) {
    if (s.phase_names[p] == "step") step = s.phase_mean_seconds[p];
    mx = std::max(mx, s.phase_mean_seconds[p]);
  }
  if (mx <= 0) return "<p>Phases were not timed in this run.</p>";
  std::vector<size_t> timed;  // a phase at 0 was not timed by the trainer
  for (size_t p = 0; p < s.phase_names.size(); ++p)
    if (s.phase_mean_seconds[p] > 0) timed.push_back(p);
  const double l = 90, bw = 420, bh = 18, t = 28;
  std::string svg = strformat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"%.0f\">",
                        t + bh * double(timed.size()) + 10);
  svg += "<text x=\"90\" y=\"18\" class=\"t\">Mean seconds per recorded step, by phase (timed phases)</text>";
  for (size_t k = 0; k < timed.size(); ++k) {
    const size_t p = timed[k];
    const double v = s.phase_mean_seconds[p], y = t + bh * double(k);
    svg += strformat("<text x=\"%.0f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%s</text>", l - 6, y + 13,
               escape(s.phase_names[p]).c_str());
    svg += strformat("<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"/>", l, y + 2, bw * v / mx, bh - 4,
               s.phase_names[p] == "step" ? "#888" : kPalette[p % 8]);
    std::string label = strformat("%.3g ms", v * 1e3);
    if (step > 0 && s.phase_names[p] != "step") label += strformat(" (%.0f%%)", 100.0 * v / step);
    svg += strformat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\">%s</text>", l + bw * v / mx + 4, y + 13, label.c_str());
  }
  return svg + "</svg>";
}

std::string a2a_matrix(const profile::ProfileSummary& s) {
  const size_t ep = size_t(s.ep);
  double total = 0;
  for (int64_t b : s.a2a_total_bytes) total += double(b);
  const double even = total / double(ep * ep);
  std::vector<std::vector<double>> cells(ep, std::vector<double>(ep, 0.0));
  std::vector<std::string> labels, tips;
  for (size_t i = 0; i < ep; ++i) {
    labels.push_back(strformat("from %zu", i));
    for (size_t j = 0; j < ep; ++j) {
      const double b = double(s.a2a_total_bytes[i * ep + j]);
      cells[i][j] = even > 0 ? b / even : 0.0;
      tips.push_back(strformat("rank %zu -> %zu: %.0f bytes", i, j, b));
    }
  }
  return heatmap("All-to-all bytes, rank to rank (colour: relative to the mean cell)", cells, labels,
                 "columns: receiving rank 0.." + std::to_string(ep - 1), tips);
}

std::vector<Series> per_layer_series(const profile::LoadBalanceData& lb, bool drop) {
  std::vector<Series> out;
  const int64_t L = lb.layers(), E = lb.num_experts;
  for (int64_t l = 0; l < L; ++l) {
    Series s{"layer " + std::to_string(lb.moe_layers[size_t(l)]), {}, {}};
    for (int64_t r = 0; r < lb.rows(); ++r) {
      s.x.push_back(double(lb.step[size_t(r)]));
      if (!drop) {
        s.y.push_back(lb.max_over_mean[size_t(r * L + l)]);
        continue;
      }
      double assigned = 0;
      for (int64_t e = 0; e < E; ++e) assigned += double(lb.tokens_per_expert[size_t((r * L + l) * E + e)]);
      s.y.push_back(assigned > 0 ? 100.0 * double(lb.dropped[size_t(r * L + l)]) / assigned : 0.0);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string load_balance_sections(const profile::RunProfile& rp) {
  const profile::ProfileSummary& s = rp.summary;
  const profile::LoadBalanceData& lb = rp.load_balance;
  std::string h = strformat("<h2>Expert load</h2><p>%lld steps recorded (%lld..%lld), %lld experts. Colour: an expert's "
                      "share of the tokens relative to the even share (blue below, white even, red above).</p>",
                      (long long)s.rows, (long long)s.first_step, (long long)s.last_step, (long long)s.num_experts);
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const profile::LayerSummary& ls = s.layers[l];
    std::vector<int64_t> steps;
    const auto cells = profile::load_heatmap(lb, int64_t(l), kMaxHeatColumns, &steps);
    std::vector<std::string> labels, tips;
    for (size_t e = 0; e < cells.size(); ++e) {
      labels.push_back(strformat("e%zu", e));
      for (size_t c = 0; c < cells[e].size(); ++c)
        tips.push_back(strformat("expert %zu, steps up to %lld: %.2fx even share", e, (long long)steps[c], cells[e][c]));
    }
    h += "<div class=\"card\">" +
         heatmap(strformat("Layer %lld: max/mean %.2f, cv %.3f, drop %.2f%%, trend %s", (long long)ls.layer,
                     ls.run.max_over_mean, ls.run.cv, 100.0 * ls.run.drop_frac, ls.trend.c_str()),
                 cells, labels, strformat("steps %lld .. %lld", (long long)s.first_step, (long long)s.last_step), tips);
    h += strformat("<p>Capacity factor that would have dropped &lt; 1%% of the assignments: %.2f over the run, %.2f over "
             "the last quarter.</p>",
             ls.capacity_factor_1pct, ls.capacity_factor_1pct_last_quarter);
    for (const std::string& a : ls.advice) h += "<p class=\"advice\">" + escape(a) + "</p>";
    h += "</div>";
  }
  h += "<h2>Imbalance and drops over time</h2>";
  h += line_chart("max/mean expert load per step", "max/mean", per_layer_series(lb, false));
  h += line_chart("dropped assignments per step", "drop %", per_layer_series(lb, true));
  h += "<h2>Step time by phase</h2>" + phase_bars(s);
  if (s.ep > 0) h += "<h2>All-to-all traffic</h2>" + a2a_matrix(s);
  return h;
}

}  // namespace

std::string profile_html(const profile::RunProfile& rp) {
  const profile::ProfileSummary& s = rp.summary;
  std::string h =
      "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>moe profile: " + escape(s.run_dir) +
      "</title><style>body{font-family:sans-serif;margin:24px;color:#222}svg{display:block;margin:8px 0}"
      ".t{font-size:13px;font-weight:bold}.a{font-size:11px}.frame{fill:none;stroke:#bbb}"
      ".card{margin-bottom:16px}.advice{color:#a40;margin:2px 0}</style></head><body>";
  h += "<h1>moe profile</h1><p>Run directory: <code>" + escape(s.run_dir) + "</code></p>";
  const profile::LossSummary& l = s.loss;
  h += "<h2>Loss</h2>";
  if (l.points > 0) {
    h += strformat("<p>first %.4f (step %lld), min %.4f (step %lld), last %.4f (step %lld); %.1fk tokens/s</p>", l.first,
             (long long)l.first_step, l.min, (long long)l.min_step, l.last, (long long)l.last_step,
             l.tokens_per_s / 1000.0);
    Series loss{"loss", {}, l.losses};
    for (int64_t st : l.steps) loss.x.push_back(double(st));
    h += line_chart("Training loss", "loss", {loss});
  } else {
    h += "<p>No logged steps in metrics.jsonl.</p>";
  }
  if (!s.profiled)
    h += "<p>Profiling was off for this run (no load_balance.h5); set profile.load_balance: true.</p>";
  else if (s.rows == 0)
    h += "<p>load_balance.h5 has no recorded steps yet.</p>";
  else
    h += load_balance_sections(rp);
  return h + "</body></html>\n";
}

}  // namespace moe::cli
