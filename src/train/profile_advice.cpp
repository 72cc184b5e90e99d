// The advice of `moe profile` and the figures behind it (docs/profile-format.md): hot, cold and
// dead experts, the capacity factor that would have dropped < 1% of the assignments, and whether
// the balancing bias moves too slowly for the imbalance.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "src/train/profile_summary.h"

namespace moe::profile {

namespace {

std::string fmt(const char* format, double a, double b = 0, double c = 0, double d = 0) {
  char buf[320];
  std::snprintf(buf, sizeof(buf), format, a, b, c, d);
  return buf;
}

// Counts (rows x E) of layer l over rows [begin, end).
std::vector<int64_t> layer_counts(const LoadBalanceData& lb, int64_t l, int64_t begin, int64_t end) {
  const int64_t L = lb.layers(), E = lb.num_experts;
  std::vector<int64_t> out;
  out.reserve(size_t((end - begin) * E));
  for (int64_t s = begin; s < end; ++s) {
    const auto* row = lb.tokens_per_expert.data() + (s * L + l) * E;
    out.insert(out.end(), row, row + E);
  }
  return out;
}

BiasFigures bias_figures(const LoadBalanceData& lb, int64_t l, double last_quarter_max_over_mean) {
  BiasFigures b;
  const int64_t S = lb.rows(), L = lb.layers(), E = lb.num_experts;
  const int64_t half = S / 2, q = std::max<int64_t>(S / 4, 1);
  if (S < 3) return b;
  // The most loaded expert of the last quarter.
  std::vector<int64_t> load(size_t(E), 0);
  for (int64_t s = S - q; s < S; ++s)
    for (int64_t e = 0; e < E; ++e) load[size_t(e)] += lb.tokens_per_expert[size_t((s * L + l) * E + e)];
  b.expert = int64_t(std::max_element(load.begin(), load.end()) - load.begin());
  auto bias = [&](int64_t s) { return double(lb.bias[size_t((s * L + l) * E + b.expert)]); };
  int64_t down = 0, moves = 0;
  bool finite = true;
  for (int64_t s = half; s < S; ++s) finite = finite && std::isfinite(bias(s));
  if (!finite) return b;
  for (int64_t s = half + 1; s < S; ++s) {
    const double d = bias(s) - bias(s - 1);
    if (d != 0) ++moves;
    if (d < 0) ++down;
  }
  if (moves == 0) return b;  // bias_update_rate 0 (or no update): nothing to judge
  b.recorded = true;
  b.steps = std::max<int64_t>(lb.step[size_t(S - 1)] - lb.step[size_t(half)], 1);
  b.moved = bias(S - 1) - bias(half);
  b.per_step = std::fabs(b.moved) / double(b.steps);
  b.one_way = double(down) / double(S - 1 - half);
  b.too_small = b.one_way >= kBiasOneWay && last_quarter_max_over_mean > kBiasImbalance;
  return b;
}

void capacity_advice(LayerSummary& ls, const ProfileSummary& s) {
  const double target = ls.capacity_factor_1pct, cf = s.capacity_factor;
  if (ls.run.drop_frac > kBadDropFrac) {
    ls.advice.push_back(fmt("%.1f%% of assignments dropped > %.0f%%: raise moe.capacity_factor to %.2f (the smallest "
                            "that would have dropped < 1%% of these counts), or set it to 0 (dropless)",
                            100.0 * ls.run.drop_frac, 100.0 * kBadDropFrac, target));
  } else if (std::isfinite(cf) && cf > 0 && ls.run.drop_frac > kTargetDropFrac && target > cf) {
    ls.advice.push_back(fmt("%.1f%% of assignments dropped with moe.capacity_factor %.2f: %.2f would have dropped "
                            "< 1%%",
                            100.0 * ls.run.drop_frac, cf, target));
  } else if (std::isfinite(cf) && cf > target + 0.25 && ls.capacity_factor_1pct_last_quarter > 0) {
    ls.advice.push_back(fmt("moe.capacity_factor %.2f is generous: %.2f would have dropped < 1%% of the assignments "
                            "(%.2f over the last quarter), with less padding memory",
                            cf, target, ls.capacity_factor_1pct_last_quarter));
  }
}

void expert_advice(LayerSummary& ls) {
  const double even = 1.0 / double(ls.shares.size());
  for (const ExpertShare& h : ls.hot)
    ls.advice.push_back("expert " + std::to_string(h.expert) +
                        fmt(" is hot: %.1f%% of tokens, %.1fx the even share %.1f%%: raise moe.aux_loss_coeff or try "
                            "moe.bias_update_rate 1e-3",
                            100.0 * h.share, h.share / even, 100.0 * even));
  for (const ExpertShare& c : ls.cold) {
    const bool dead = std::find(ls.dead.begin(), ls.dead.end(), c.expert) != ls.dead.end();
    ls.advice.push_back("expert " + std::to_string(c.expert) +
                        fmt(" is nearly unused (%.1f%% of tokens, even share %.1f%%): raise moe.aux_loss_coeff or try "
                            "moe.bias_update_rate 1e-3",
                            100.0 * c.share, 100.0 * even) +
                        (dead ? "; it got no token at all in the last quarter (dead)" : ""));
  }
  for (int64_t e : ls.dead) {
    const bool listed = std::any_of(ls.cold.begin(), ls.cold.end(), [&](const ExpertShare& c) { return c.expert == e; });
    if (!listed)
      ls.advice.push_back("expert " + std::to_string(e) + " got no token in the last quarter of the rows (dead)" +
                          fmt(" though it had %.1f%% over the run: raise moe.aux_loss_coeff or try "
                              "moe.bias_update_rate 1e-3",
                              100.0 * ls.shares[size_t(e)]));
  }
}

void bias_advice(LayerSummary& ls, const ProfileSummary& s) {
  const BiasFigures& b = ls.bias;
  if (!b.too_small) return;
  std::string rate = std::isfinite(s.bias_update_rate) && s.bias_update_rate > 0
                         ? fmt("moe.bias_update_rate %.3g is too small for this imbalance; try %.3g",
                               s.bias_update_rate, 4 * s.bias_update_rate)
                         : std::string("moe.bias_update_rate looks too small for this imbalance; try 4x");
  ls.advice.push_back("the bias of expert " + std::to_string(b.expert) +
                      fmt(" fell in %.0f%% of the recorded updates over the last %.0f steps (by %.3g, %.3g per "
                          "step)",
                          100.0 * b.one_way, double(b.steps), -b.moved, b.per_step) +
                      fmt(" yet max/mean stays %.2f > %.1f: ", ls.last_quarter.max_over_mean, kBiasImbalance) + rate);
}

}  // namespace

int64_t dropped_at(const std::vector<int64_t>& counts, int64_t E, double capacity_factor) {
  int64_t dropped = 0;
  for (size_t r = 0; r + size_t(E) <= counts.size(); r += size_t(E)) {
    int64_t a = 0;
    for (int64_t e = 0; e < E; ++e) a += counts[r + size_t(e)];
    const auto cap = int64_t(std::ceil(capacity_factor * double(a) / double(E)));
    for (int64_t e = 0; e < E; ++e) dropped += std::max<int64_t>(0, counts[r + size_t(e)] - cap);
  }
  return dropped;
}

double min_capacity_factor(const std::vector<int64_t>& counts, int64_t E, double max_drop_frac) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total == 0 || E <= 0) return 0;
  auto ok = [&](double cf) { return double(dropped_at(counts, E, cf)) < max_drop_frac * double(total); };
  // Drops fall as cf grows; at cf = E the capacity is every assignment of the row.
  int64_t lo = 0, hi = E * 100;  // in hundredths: ok(hi / 100) holds, find the smallest that does
  if (ok(0.0)) return 0;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    (ok(double(mid) / 100.0) ? hi : lo) = mid;
  }
  return double(hi) / 100.0;
}

void add_layer_advice(LayerSummary& ls, const LoadBalanceData& lb, int64_t l, const ProfileSummary& s) {
  const int64_t S = lb.rows(), E = lb.num_experts;
  const double even = 1.0 / double(E);
  for (int64_t e = 0; e < E; ++e) {
    const double sh = ls.shares[size_t(e)];
    if (sh > kHotShareRatio * even) ls.hot.push_back({e, sh});
    if (sh < kColdShareRatio * even) ls.cold.push_back({e, sh});
  }
  std::sort(ls.hot.begin(), ls.hot.end(), [](auto& a, auto& b) { return a.share > b.share; });
  std::sort(ls.cold.begin(), ls.cold.end(), [](auto& a, auto& b) { return a.share < b.share; });
  const int64_t q = std::max<int64_t>(S / 4, 1);
  const std::vector<int64_t> last = layer_counts(lb, l, std::max<int64_t>(S - q, 0), S);
  for (int64_t e = 0; e < E; ++e) {
    int64_t n = 0;
    for (size_t r = 0; r < last.size(); r += size_t(E)) n += last[r + size_t(e)];
    if (n == 0 && !last.empty()) ls.dead.push_back(e);
  }
  ls.capacity_factor_1pct = min_capacity_factor(layer_counts(lb, l, 0, S), E, kTargetDropFrac);
  ls.capacity_factor_1pct_last_quarter = min_capacity_factor(last, E, kTargetDropFrac);
  ls.bias = bias_figures(lb, l, ls.last_quarter.max_over_mean);

  if (ls.last_quarter.max_over_mean > kBadMaxOverMean)
    ls.advice.push_back(fmt("max/mean %.2f > %.1f: raise moe.aux_loss_coeff or try moe.bias_update_rate 1e-3",
                            ls.last_quarter.max_over_mean, kBadMaxOverMean));
  capacity_advice(ls, s);
  expert_advice(ls);
  bias_advice(ls, s);
}

}  // namespace moe::profile
