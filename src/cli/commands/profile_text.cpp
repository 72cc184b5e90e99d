// Terminal form of `moe profile`.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "src/core/strformat.h"
#include "src/cli/commands/profile_report.h"

namespace moe::cli {

namespace {

constexpr int64_t kSparkWidth = 60;
constexpr int64_t kHeatWidth = 60;

std::string seconds_text(double s) {
  if (s >= 1.0) return strformat("%.2f s", s);
  if (s >= 1e-3) return strformat("%.1f ms", s * 1e3);
  return strformat("%.0f us", s * 1e6);
}

void loss_section(const profile::LossSummary& l, std::string& out) {
  if (l.points == 0) {
    out += "loss      no logged steps in metrics.jsonl\n";
    return;
  }
  out += strformat("loss      first %.4f (step %lld)  min %.4f (step %lld)  last %.4f (step %lld)  |  %.1fk tok/s\n",
             l.first, (long long)l.first_step, l.min, (long long)l.min_step, l.last, (long long)l.last_step,
             l.tokens_per_s / 1000.0);
  out += "          " + sparkline(l.losses, kSparkWidth) +
         strformat("  (steps %lld..%lld, %lld points)\n", (long long)l.first_step, (long long)l.last_step,
             (long long)l.points);
}

void heatmap_section(const profile::LoadBalanceData& lb, int64_t l, std::string& out) {
  std::vector<int64_t> steps;
  const auto heat = profile::load_heatmap(lb, l, kHeatWidth, &steps);
  out += strformat("          load over steps %lld..%lld (rows = experts, shade = share / even share)\n",
             (long long)lb.step.front(), (long long)lb.step.back());
  for (size_t e = 0; e < heat.size(); ++e) {
    out += strformat("          e%-3zu |", e);
    for (double r : heat[e]) out += shade(r);
    out += "|\n";
  }
}

void layer_section(const profile::LayerSummary& s, const profile::RunProfile& rp, int64_t index, std::string& out) {
  const double even = 100.0 / double(s.shares.size());
  out += strformat("layer %-3lld max/mean %.2f (peak %.2f)  cv %.3f  drop %.2f%%  entropy %.3f / ln %zu = %.3f\n",
             (long long)s.layer, s.run.max_over_mean, s.max_over_mean_peak, s.run.cv, 100.0 * s.run.drop_frac,
             s.entropy, s.shares.size(), s.entropy_max);
  out += strformat("          hottest expert %lld (%.1f%% of tokens)  coldest expert %lld (%.1f%%)  even share %.1f%%\n",
             (long long)s.hottest.expert, 100.0 * s.hottest.share, (long long)s.coldest.expert,
             100.0 * s.coldest.share, even);
  out += strformat("          trend: max/mean %.2f -> %.2f, cv %.3f -> %.3f (first vs last quarter): %s\n",
             s.first_quarter.max_over_mean, s.last_quarter.max_over_mean, s.first_quarter.cv, s.last_quarter.cv,
             s.trend.c_str());
  out += strformat("          capacity factor that would have dropped < 1%%: %.2f over the run, %.2f over the last quarter\n",
             s.capacity_factor_1pct, s.capacity_factor_1pct_last_quarter);
  if (s.bias.recorded)
    out += strformat("          bias of expert %lld: %+.3g over the last %lld steps (%.3g per step), lowered in %.0f%% of "
               "updates\n",
               (long long)s.bias.expert, s.bias.moved, (long long)s.bias.steps, s.bias.per_step, 100.0 * s.bias.one_way);
  heatmap_section(rp.load_balance, index, out);
  for (const std::string& a : s.advice) out += "          advice: " + a + "\n";
}

void phase_section(const profile::ProfileSummary& s, std::string& out) {
  double step = 0, parts = 0;
  for (size_t p = 0; p < s.phase_names.size(); ++p) {
    if (s.phase_names[p] == "step")
      step = s.phase_mean_seconds[p];
    else
      parts += s.phase_mean_seconds[p];
  }
  if (step <= 0 && parts <= 0) {
    out += "phases    not timed in this run\n";
    return;
  }
  out += "phases    mean per recorded step:";
  for (size_t p = 0; p < s.phase_names.size(); ++p) {
    if (s.phase_names[p] == "step" || s.phase_mean_seconds[p] <= 0) continue;  // step last; 0 = not timed
    out += " " + s.phase_names[p] + " " + seconds_text(s.phase_mean_seconds[p]);
    if (step > 0) out += strformat(" (%.0f%%)", 100.0 * s.phase_mean_seconds[p] / step);
  }
  out += " | step " + seconds_text(step) + "\n";
}

void a2a_section(const profile::ProfileSummary& s, std::string& out) {
  if (s.ep <= 0) return;
  out += "all-to-all bytes over the run (row = sender rank, column = receiver rank)\n";
  for (int64_t i = 0; i < s.ep; ++i) {
    out += strformat("          r%-3lld", (long long)i);
    for (int64_t j = 0; j < s.ep; ++j) out += strformat(" %12lld", (long long)s.a2a_total_bytes[size_t(i * s.ep + j)]);
    out += "\n";
  }
}

}  // namespace

std::string sparkline(const std::vector<double>& v, int64_t width) {
  static const char* kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  if (v.empty() || width <= 0) return "";
  const int64_t n = int64_t(v.size()), cols = std::min(n, width);
  std::vector<double> m(size_t(cols), 0.0);
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t b = c * n / cols, e = (c + 1) * n / cols;
    for (int64_t i = b; i < e; ++i) m[size_t(c)] += v[size_t(i)] / double(e - b);
  }
  const auto [lo, hi] = std::minmax_element(m.begin(), m.end());
  std::string out;
  for (double x : m) {
    const int level = *hi > *lo ? int(std::lround((x - *lo) / (*hi - *lo) * 7.0)) : 3;
    out += kBars[std::clamp(level, 0, 7)];
  }
  return out;
}

const char* shade(double ratio) {
  if (ratio < 0.25) return " ";
  if (ratio < 0.75) return "░";
  if (ratio < 1.25) return "▒";
  if (ratio < 2.0) return "▓";
  return "█";
}

std::string profile_text(const profile::RunProfile& rp) {
  const profile::ProfileSummary& s = rp.summary;
  std::string out = "run       " + s.run_dir + "\n";
  loss_section(s.loss, out);
  if (!s.profiled) {
    out += "load balance: profiling was off for this run (no load_balance.h5); set profile.load_balance: true\n";
    return out;
  }
  if (s.rows == 0) {
    out += "load balance: load_balance.h5 has no recorded steps yet\n";
    return out;
  }
  out += strformat("load balance: %lld steps recorded (%lld..%lld, every %lld), %lld experts, %zu MoE layers\n",
             (long long)s.rows, (long long)s.first_step, (long long)s.last_step, (long long)s.every,
             (long long)s.num_experts, s.layers.size());
  for (size_t l = 0; l < s.layers.size(); ++l) layer_section(s.layers[l], rp, int64_t(l), out);
  out += "          shades: ' ' <0.25x  '░' <0.75x  '▒' <1.25x  '▓' <2x  '█' >=2x the even share\n";
  phase_section(s, out);
  a2a_section(s, out);
  return out;
}

}  // namespace moe::cli
