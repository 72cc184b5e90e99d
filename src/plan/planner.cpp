#include "src/plan/planner.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "src/core/error.h"
#include "src/train/flops.h"

namespace moe::plan {
namespace {

std::string gib(double bytes, int digits = 1) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.*f GiB", digits, bytes / 1073741824.0);
  return b;
}

// What to change when a part of memory is the largest.
std::string hint_for(const std::string& part, const Layout& l) {
  if (part == "optimizer state")
    return l.zero_stage < 1 ? "try zero_stage 1" : "try more dp (ZeRO shards over it), pp or ep";
  if (part == "gradients") return l.zero_stage < 2 ? "try zero_stage 2" : "try more pp or ep";
  if (part == "weights") return l.zero_stage < 3 ? "try zero_stage 3, or more tp, pp or ep" : "try more tp, pp or ep";
  if (part == "activations")
    return l.recompute != "block" ? "try recompute block or more microbatches" : "try more tp, pp or microbatches";
  if (part == "ZeRO gather staging") return "try zero_stage 2 (stage 3 stages a whole layer) or more tp, pp or ep";
  return "try a lower moe.capacity_factor or more ep";
}

}  // namespace

double a2a_buffer_factor(const Config& c, double imbalance) {
  return c.moe.capacity_factor > 0 ? c.moe.capacity_factor : std::max(1.0, imbalance);
}

std::string fit_reason(const Layout& l, const MemoryBreakdown& m, double capacity_bytes) {
  if (m.total() <= capacity_bytes) return "";
  const std::pair<const char*, double> parts[] = {{"weights", m.params},
                                                  {"gradients", m.grads},
                                                  {"optimizer state", m.optimizer},
                                                  {"activations", m.activations},
                                                  {"all-to-all buffers", m.a2a_buffers},
                                                  {"ZeRO gather staging", m.staging}};
  auto biggest = std::max_element(std::begin(parts), std::end(parts),
                                  [](const auto& a, const auto& b) { return a.second < b.second; });
  // Enough digits that "needs X > Y" never reads as X == Y.
  int digits = 1;
  while (digits < 4 && gib(m.total(), digits) == gib(capacity_bytes, digits)) ++digits;
  return "needs " + gib(m.total(), digits) + " > " + gib(capacity_bytes, digits) + " memory: " + biggest->first + " " +
         gib(biggest->second) + "; " + hint_for(biggest->first, l);
}

LayoutEstimate estimate_layout(const PlanInputs& in, const Layout& l) {
  const Config c = with_layout(in.config, l);
  LayoutEstimate e;
  e.layout = l;
  e.memory = estimate_memory(c, in.hardware, a2a_buffer_factor(c, in.imbalance));
  e.time = estimate_step(c, in.hardware, in.imbalance, in.threads);
  const double tokens = double(c.train.batch_size * c.model.seq_len);
  e.tokens_per_s = tokens / e.time.total();
  e.mfu = e.tokens_per_s * train_flops_per_token(c) /
          (double(l.world()) * in.hardware.peak_flops(c.train.precision));
  e.reason = fit_reason(l, e.memory, in.hardware.memory_bytes);
  e.fits = e.reason.empty();
  return e;
}

PlanResult make_plan(const PlanInputs& in, int64_t world, const EnumerateOptions& o) {
  PlanResult r;
  r.world = world;
  const Layout own = layout_of(in.config);
  if (own.world() == world) {
    r.has_configured = true;
    r.configured = estimate_layout(in, own);
  }
  for (const Layout& l : enumerate_layouts(in.config, world, o)) {
    LayoutEstimate e = estimate_layout(in, l);
    (e.fits ? r.fitting : r.not_fitting).push_back(std::move(e));
    ++r.considered;
  }
  std::stable_sort(r.fitting.begin(), r.fitting.end(),
                   [](const auto& a, const auto& b) {
                     // Equal times (ZeRO 1 and 2 move the same bytes): the smaller footprint first.
                     if (a.time.total() != b.time.total()) return a.time.total() < b.time.total();
                     return a.memory.total() < b.memory.total();
                   });
  std::stable_sort(r.not_fitting.begin(), r.not_fitting.end(),
                   [](const auto& a, const auto& b) { return a.memory.total() < b.memory.total(); });
  return r;
}

double imbalance_from_run(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / "metrics.jsonl").string();
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open it; --profile takes a run directory written by moe train");
  std::vector<double> values;
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded())
      throw DataError(path + ":" + std::to_string(line_no) + ": not JSON; the file is damaged");
    if (j.contains("max_over_mean") && j["max_over_mean"].is_number()) values.push_back(j["max_over_mean"]);
  }
  if (values.empty())
    throw DataError(path + ": no step records with max_over_mean; train with MoE layers, or pass --imbalance X");
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace moe::plan
