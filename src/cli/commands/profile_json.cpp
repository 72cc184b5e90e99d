// `moe profile --json`: the figures of the text report as one JSON object (docs/profile-format.md).
#include <cmath>

#include "src/cli/commands/profile_report.h"

namespace moe::cli {

namespace {

nlohmann::json figures_json(const profile::BalanceFigures& f) {
  return {{"max_over_mean", f.max_over_mean}, {"cv", f.cv}, {"drop_frac", f.drop_frac}};
}

nlohmann::json shares_json(const std::vector<profile::ExpertShare>& v) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& x : v) out.push_back({{"expert", x.expert}, {"share", x.share}});
  return out;
}

nlohmann::json bias_json(const profile::BiasFigures& b) {
  if (!b.recorded) return nullptr;
  return {{"expert", b.expert},   {"steps", b.steps},     {"moved", b.moved},
          {"per_step", b.per_step}, {"one_way", b.one_way}, {"too_small", b.too_small}};
}

// NaN (not known) as null.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json layer_json(const profile::LayerSummary& s) {
  return {{"layer", s.layer},
          {"hot", shares_json(s.hot)},
          {"cold", shares_json(s.cold)},
          {"dead", s.dead},
          {"capacity_factor_1pct", s.capacity_factor_1pct},
          {"capacity_factor_1pct_last_quarter", s.capacity_factor_1pct_last_quarter},
          {"bias", bias_json(s.bias)},
          {"max_over_mean", s.run.max_over_mean},
          {"max_over_mean_peak", s.max_over_mean_peak},
          {"cv", s.run.cv},
          {"drop_frac", s.run.drop_frac},
          {"entropy", s.entropy},
          {"entropy_max", s.entropy_max},
          {"shares", s.shares},
          {"hottest", {{"expert", s.hottest.expert}, {"share", s.hottest.share}}},
          {"coldest", {{"expert", s.coldest.expert}, {"share", s.coldest.share}}},
          {"trend",
           {{"first_quarter", figures_json(s.first_quarter)},
            {"last_quarter", figures_json(s.last_quarter)},
            {"direction", s.trend}}},
          {"advice", s.advice}};
}

}  // namespace

nlohmann::json profile_json(const profile::RunProfile& rp) {
  const profile::ProfileSummary& s = rp.summary;
  const profile::LossSummary& l = s.loss;
  nlohmann::json j;
  j["run_dir"] = s.run_dir;
  j["loss"] = {{"points", l.points},         {"first", l.first},         {"first_step", l.first_step},
               {"min", l.min},               {"min_step", l.min_step},   {"last", l.last},
               {"last_step", l.last_step},   {"tokens_per_s", l.tokens_per_s}};
  j["profiling"] = s.profiled;
  j["config"] = {{"capacity_factor", number_or_null(s.capacity_factor)},
                 {"bias_update_rate", number_or_null(s.bias_update_rate)}};
  if (!s.profiled) {
    j["load_balance"] = nullptr;
    return j;
  }
  nlohmann::json lb = {{"path", rp.load_balance.path}, {"rows", s.rows},         {"first_step", s.first_step},
                       {"last_step", s.last_step},     {"every", s.every},       {"num_experts", s.num_experts},
                       {"layers", nlohmann::json::array()}};
  for (const profile::LayerSummary& ls : s.layers) lb["layers"].push_back(layer_json(ls));
  nlohmann::json phases = nlohmann::json::object();
  for (size_t p = 0; p < s.phase_names.size(); ++p) phases[s.phase_names[p]] = s.phase_mean_seconds[p];
  lb["phase_mean_seconds"] = phases;
  if (s.ep > 0) {
    nlohmann::json m = nlohmann::json::array();
    for (int64_t i = 0; i < s.ep; ++i)
      m.push_back(std::vector<int64_t>(s.a2a_total_bytes.begin() + i * s.ep,
                                       s.a2a_total_bytes.begin() + (i + 1) * s.ep));
    lb["a2a_total_bytes"] = m;
  }
  j["load_balance"] = lb;
  return j;
}

}  // namespace moe::cli
