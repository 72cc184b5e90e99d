// `moe profile RUN_A --compare RUN_B`: two runs side by side: loss, and per MoE layer the
// imbalance, drops and router entropy (layers matched by model layer index).
#include <cmath>
#include <cstdio>
#include <set>

#include "src/core/strformat.h"
#include "src/cli/commands/profile_report.h"

namespace moe::cli {

namespace {

using profile::LayerSummary;
using profile::ProfileSummary;

const LayerSummary* find_layer(const ProfileSummary& s, int64_t layer) {
  for (const LayerSummary& l : s.layers)
    if (l.layer == layer) return &l;
  return nullptr;
}

std::set<int64_t> all_layers(const ProfileSummary& a, const ProfileSummary& b) {
  std::set<int64_t> out;
  for (const LayerSummary& l : a.layers) out.insert(l.layer);
  for (const LayerSummary& l : b.layers) out.insert(l.layer);
  return out;
}

// One row "name  A  B  B-A"; a side that lacks the figure prints "-".
std::string row(const char* name, const char* num, bool has_a, double a, bool has_b, double b) {
  auto cell = [&](bool has, double v) { return has ? strformat(num, v) : std::string("-"); };
  std::string out = strformat("  %-14s %14s %14s", name, cell(has_a, a).c_str(), cell(has_b, b).c_str());
  if (has_a && has_b) {
    const std::string diff = std::string(b - a >= 0 ? "+" : "") + strformat(num, b - a);
    out += strformat(" %14s", diff.c_str());
  }
  return out + "\n";
}

struct LayerFigure {
  const char* name;
  const char* num;
  double (*get)(const LayerSummary&);
};
const LayerFigure kLayerFigures[] = {
    {"max/mean", "%.3f", [](const LayerSummary& l) { return l.run.max_over_mean; }},
    {"max/mean last", "%.3f", [](const LayerSummary& l) { return l.last_quarter.max_over_mean; }},
    {"cv", "%.3f", [](const LayerSummary& l) { return l.run.cv; }},
    {"drop %", "%.3f", [](const LayerSummary& l) { return 100.0 * l.run.drop_frac; }},
    {"entropy", "%.4f", [](const LayerSummary& l) { return l.entropy; }},
};

}  // namespace

std::string profile_compare_text(const profile::RunProfile& ra, const profile::RunProfile& rb) {
  const ProfileSummary &a = ra.summary, &b = rb.summary;
  std::string out = "compare   A: " + a.run_dir + "\n          B: " + b.run_dir + "\n";
  out += strformat("  %-14s %14s %14s %14s\n", "", "A", "B", "B - A");
  const bool la = a.loss.points > 0, lb = b.loss.points > 0;
  out += row("loss first", "%.4f", la, a.loss.first, lb, b.loss.first);
  out += row("loss min", "%.4f", la, a.loss.min, lb, b.loss.min);
  out += row("loss last", "%.4f", la, a.loss.last, lb, b.loss.last);
  out += row("last step", "%.0f", la, double(a.loss.last_step), lb, double(b.loss.last_step));
  out += row("tokens/s", "%.0f", la, a.loss.tokens_per_s, lb, b.loss.tokens_per_s);
  if (!a.profiled || !b.profiled)
    out += std::string("load balance: not recorded in run ") + (!a.profiled ? "A" : "") +
           (!a.profiled && !b.profiled ? " and " : "") + (!b.profiled ? "B" : "") + "\n";
  for (int64_t layer : all_layers(a, b)) {
    const LayerSummary *x = find_layer(a, layer), *y = find_layer(b, layer);
    out += strformat("layer %lld\n", (long long)layer);
    for (const LayerFigure& f : kLayerFigures)
      out += row(f.name, f.num, x != nullptr, x ? f.get(*x) : 0.0, y != nullptr, y ? f.get(*y) : 0.0);
  }
  return out;
}

nlohmann::json profile_compare_json(const profile::RunProfile& ra, const profile::RunProfile& rb) {
  const ProfileSummary &a = ra.summary, &b = rb.summary;
  auto pair = [](bool has_a, double x, bool has_b, double y) {
    return nlohmann::json::array({has_a ? nlohmann::json(x) : nlohmann::json(nullptr),
                                  has_b ? nlohmann::json(y) : nlohmann::json(nullptr)});
  };
  const bool la = a.loss.points > 0, lb = b.loss.points > 0;
  nlohmann::json j;
  j["runs"] = {a.run_dir, b.run_dir};
  j["loss"] = {{"first", pair(la, a.loss.first, lb, b.loss.first)},
               {"min", pair(la, a.loss.min, lb, b.loss.min)},
               {"last", pair(la, a.loss.last, lb, b.loss.last)},
               {"last_step", pair(la, double(a.loss.last_step), lb, double(b.loss.last_step))},
               {"tokens_per_s", pair(la, a.loss.tokens_per_s, lb, b.loss.tokens_per_s)}};
  j["profiling"] = {a.profiled, b.profiled};
  j["layers"] = nlohmann::json::array();
  for (int64_t layer : all_layers(a, b)) {
    const LayerSummary *x = find_layer(a, layer), *y = find_layer(b, layer);
    auto fig = [&](double (*get)(const LayerSummary&)) {
      return pair(x != nullptr, x ? get(*x) : 0.0, y != nullptr, y ? get(*y) : 0.0);
    };
    j["layers"].push_back({{"layer", layer},
                           {"max_over_mean", fig(kLayerFigures[0].get)},
                           {"max_over_mean_last_quarter", fig(kLayerFigures[1].get)},
                           {"cv", fig(kLayerFigures[2].get)},
                           {"drop_frac", fig([](const LayerSummary& l) { return l.run.drop_frac; })},
                           {"entropy", fig(kLayerFigures[4].get)}});
  }
  return j;
}

}  // namespace moe::cli
