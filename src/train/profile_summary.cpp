#include "src/train/profile_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <yaml-cpp/yaml.h>

#include "src/core/error.h"
#include "src/train/profile_schema.h"

namespace moe::profile {

namespace {

LossSummary summarize_loss(const std::vector<MetricsRow>& m) {
  LossSummary s;
  s.points = int64_t(m.size());
  if (m.empty()) return s;
  s.first = m.front().loss;
  s.first_step = m.front().step;
  s.last = m.back().loss;
  s.last_step = m.back().step;
  s.min = m.front().loss;
  s.min_step = m.front().step;
  double tps = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].loss < s.min) {
      s.min = m[i].loss;
      s.min_step = m[i].step;
    }
    if (i > 0 || m.size() == 1) tps += m[i].tokens_per_s;
    s.steps.push_back(m[i].step);
    s.losses.push_back(m[i].loss);
  }
  s.tokens_per_s = tps / double(m.size() == 1 ? 1 : m.size() - 1);
  return s;
}

// Balance figures over rows [begin, end) of one layer.
BalanceFigures figures(const LoadBalanceData& lb, int64_t l, int64_t begin, int64_t end) {
  BalanceFigures f;
  const int64_t L = lb.layers(), E = lb.num_experts;
  double dropped = 0, assigned = 0;
  for (int64_t s = begin; s < end; ++s) {
    f.max_over_mean += lb.max_over_mean[size_t(s * L + l)];
    f.cv += lb.cv[size_t(s * L + l)];
    dropped += double(lb.dropped[size_t(s * L + l)]);
    for (int64_t e = 0; e < E; ++e) assigned += double(lb.tokens_per_expert[size_t((s * L + l) * E + e)]);
  }
  const double n = double(std::max<int64_t>(end - begin, 1));
  f.max_over_mean /= n;
  f.cv /= n;
  f.drop_frac = assigned > 0 ? dropped / assigned : 0;
  return f;
}

// moe.capacity_factor and moe.bias_update_rate of RUN_DIR/config.yaml, to word the advice; the
// report does without them (NaN) when the file is missing or unreadable.
void read_run_config(const std::string& run_dir, ProfileSummary& s) {
  const std::filesystem::path p = std::filesystem::path(run_dir) / "config.yaml";
  if (!std::filesystem::exists(p)) return;
  try {
    const YAML::Node moe = YAML::LoadFile(p.string())["moe"];
    if (moe && moe["capacity_factor"]) s.capacity_factor = moe["capacity_factor"].as<double>();
    if (moe && moe["bias_update_rate"]) s.bias_update_rate = moe["bias_update_rate"].as<double>();
  } catch (const YAML::Exception&) {
    s.capacity_factor = s.bias_update_rate = kNaN;
  }
}

LayerSummary summarize_layer(const LoadBalanceData& lb, int64_t l, const ProfileSummary& sum) {
  const int64_t S = lb.rows(), L = lb.layers(), E = lb.num_experts;
  LayerSummary ls;
  ls.layer = lb.moe_layers[size_t(l)];
  ls.run = figures(lb, l, 0, S);
  ls.entropy_max = std::log(double(E));
  std::vector<double> counts(size_t(E), 0.0);
  double total = 0;
  for (int64_t s = 0; s < S; ++s) {
    ls.max_over_mean_peak = std::max(ls.max_over_mean_peak, lb.max_over_mean[size_t(s * L + l)]);
    ls.entropy += lb.entropy[size_t(s * L + l)] / double(S);
    for (int64_t e = 0; e < E; ++e) {
      const double c = double(lb.tokens_per_expert[size_t((s * L + l) * E + e)]);
      counts[size_t(e)] += c;
      total += c;
    }
  }
  for (double c : counts) ls.shares.push_back(total > 0 ? c / total : 0.0);
  const auto hot = std::max_element(ls.shares.begin(), ls.shares.end());
  const auto cold = std::min_element(ls.shares.begin(), ls.shares.end());
  ls.hottest = {int64_t(hot - ls.shares.begin()), *hot};
  ls.coldest = {int64_t(cold - ls.shares.begin()), *cold};
  const int64_t q = std::max<int64_t>(S / 4, 1);
  ls.first_quarter = figures(lb, l, 0, std::min(q, S));
  ls.last_quarter = figures(lb, l, std::max<int64_t>(S - q, 0), S);
  const double a = ls.first_quarter.max_over_mean, b = ls.last_quarter.max_over_mean;
  // Against the excess over perfect balance (1.0), so small wobbles near 1 read as steady.
  const double excess_a = a - 1.0, excess_b = b - 1.0;
  ls.trend = excess_b < 0.8 * excess_a - 0.02 ? "improving" : (excess_b > 1.25 * excess_a + 0.02 ? "worsening" : "steady");
  add_layer_advice(ls, lb, l, sum);
  return ls;
}

}  // namespace

ProfileSummary summarize(const std::string& run_dir, const std::vector<MetricsRow>& metrics,
                         const LoadBalanceData* lb) {
  ProfileSummary s;
  s.run_dir = run_dir;
  s.loss = summarize_loss(metrics);
  read_run_config(run_dir, s);
  if (!lb) return s;
  s.profiled = true;
  s.rows = lb->rows();
  s.num_experts = lb->num_experts;
  s.every = lb->every;
  if (s.rows == 0) return s;
  s.first_step = lb->step.front();
  s.last_step = lb->step.back();
  for (int64_t l = 0; l < lb->layers(); ++l) s.layers.push_back(summarize_layer(*lb, l, s));
  const size_t P = lb->phase_names.size();
  s.phase_names = lb->phase_names;
  s.phase_mean_seconds.assign(P, 0.0);
  for (int64_t r = 0; r < s.rows; ++r)
    for (size_t p = 0; p < P; ++p) s.phase_mean_seconds[p] += lb->phase_seconds[size_t(r) * P + p] / double(s.rows);
  s.ep = lb->ep;
  if (s.ep > 0) {
    const size_t n = size_t(s.ep * s.ep);
    s.a2a_total_bytes.assign(n, 0);
    for (int64_t r = 0; r < s.rows; ++r)
      for (size_t i = 0; i < n; ++i) s.a2a_total_bytes[i] += lb->a2a_bytes[size_t(r) * n + i];
  }
  return s;
}

std::vector<std::vector<double>> load_heatmap(const LoadBalanceData& lb, int64_t l, int64_t max_columns,
                                              std::vector<int64_t>* bucket_steps) {
  const int64_t S = lb.rows(), L = lb.layers(), E = lb.num_experts;
  const int64_t B = std::min<int64_t>(S, std::max<int64_t>(max_columns, 1));
  std::vector<std::vector<double>> heat(size_t(E), std::vector<double>(size_t(B), 0.0));
  if (bucket_steps) bucket_steps->assign(size_t(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t begin = b * S / B, end = (b + 1) * S / B;
    double total = 0;
    for (int64_t s = begin; s < end; ++s)
      for (int64_t e = 0; e < E; ++e) {
        const double c = double(lb.tokens_per_expert[size_t((s * L + l) * E + e)]);
        heat[size_t(e)][size_t(b)] += c;
        total += c;
      }
    for (int64_t e = 0; e < E; ++e)
      heat[size_t(e)][size_t(b)] = total > 0 ? heat[size_t(e)][size_t(b)] / total * double(E) : 0.0;
    if (bucket_steps) (*bucket_steps)[size_t(b)] = lb.step[size_t(end - 1)];
  }
  return heat;
}

RunProfile load_run_profile(const std::string& run_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(run_dir))
    throw DataError(run_dir + ": no such run directory (pass the --run-dir of a `moe train` run)");
  RunProfile rp;
  const std::vector<MetricsRow> metrics = read_metrics((fs::path(run_dir) / kMetricsFileName).string());
  const fs::path h5 = fs::path(run_dir) / kFileName;
  if (fs::exists(h5)) {
    rp.load_balance = read_load_balance(h5.string());
    rp.has_load_balance = true;
  }
  rp.summary = summarize(run_dir, metrics, rp.has_load_balance ? &rp.load_balance : nullptr);
  return rp;
}

}  // namespace moe::profile
