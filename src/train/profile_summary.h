// The figures of `moe profile`, computed from load_balance.h5 and metrics.jsonl; the text, JSON and
// HTML reports (src/cli/commands/profile_*.cpp) only format them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/train/profile_data.h"

namespace moe::profile {

// Advice thresholds (docs/profile-format.md).
inline constexpr double kBadMaxOverMean = 1.5;   // last-quarter max/mean above this
inline constexpr double kBadDropFrac = 0.05;     // dropped / assignments over the run
inline constexpr double kColdShareRatio = 0.25;  // an expert below this x the even share is "nearly unused"

struct LossSummary {
  int64_t points = 0;  // logged steps; 0 when metrics.jsonl has none
  double first = 0, min = 0, last = 0;
  int64_t first_step = 0, min_step = 0, last_step = 0;
  double tokens_per_s = 0;  // mean over logged steps after the first (the first includes start-up)
  std::vector<int64_t> steps;
  std::vector<double> losses;
};

struct ExpertShare {
  int64_t expert = 0;
  double share = 0;  // fraction of all assignments of the layer over the run
};

struct BalanceFigures {
  double max_over_mean = 0, cv = 0, drop_frac = 0;
};

struct LayerSummary {
  int64_t layer = 0;              // model layer index
  BalanceFigures run;             // max/mean and cv: mean over recorded steps; drop: total fraction
  double max_over_mean_peak = 0;  // worst recorded step
  double entropy = 0;             // mean router entropy (nats)
  double entropy_max = 0;         // ln E
  std::vector<double> shares;     // (E) fraction of assignments per expert over the run
  ExpertShare hottest, coldest;
  BalanceFigures first_quarter, last_quarter;
  std::string trend;              // "improving", "worsening" or "steady" (last vs first quarter max/mean)
  std::vector<std::string> advice;
};

struct ProfileSummary {
  std::string run_dir;
  LossSummary loss;
  bool profiled = false;  // load_balance.h5 present
  int64_t rows = 0, first_step = 0, last_step = 0, num_experts = 0, every = 0;
  std::vector<LayerSummary> layers;
  std::vector<std::string> phase_names;
  std::vector<double> phase_mean_seconds;  // (P) mean over recorded steps
  int64_t ep = 0;
  std::vector<int64_t> a2a_total_bytes;    // (ep, ep) summed over recorded steps
};

// lb may be null (profiling was off).
ProfileSummary summarize(const std::string& run_dir, const std::vector<MetricsRow>& metrics,
                         const LoadBalanceData* lb);

// Load heatmap of one MoE layer (index into moe_layers): [expert][bucket] = the expert's share of
// the bucket's assignments divided by the even share 1/E (1 = perfectly even). Recorded steps are
// split into at most max_columns consecutive buckets; bucket_steps gets each bucket's last step.
std::vector<std::vector<double>> load_heatmap(const LoadBalanceData& lb, int64_t layer_index, int64_t max_columns,
                                              std::vector<int64_t>* bucket_steps);

// Reads RUN_DIR/metrics.jsonl and, when present, RUN_DIR/load_balance.h5, and summarizes them.
// DataError naming the file when the run directory or a file is missing or damaged.
struct RunProfile {
  ProfileSummary summary;
  bool has_load_balance = false;
  LoadBalanceData load_balance;
};
RunProfile load_run_profile(const std::string& run_dir);

}  // namespace moe::profile
