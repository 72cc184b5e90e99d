// The figures of `moe profile`, computed from load_balance.h5 and metrics.jsonl; the text, JSON and
// HTML reports (src/cli/commands/profile_*.cpp) only format them.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "src/train/profile_data.h"

namespace moe::profile {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Advice thresholds (docs/profile-format.md).
inline constexpr double kBadMaxOverMean = 1.5;   // last-quarter max/mean above this
inline constexpr double kBadDropFrac = 0.05;     // dropped / assignments over the run
inline constexpr double kColdShareRatio = 0.25;  // an expert below this x the even share is "nearly unused"
inline constexpr double kHotShareRatio = 1.5;    // an expert above this x the even share is "hot"
inline constexpr double kTargetDropFrac = 0.01;  // the capacity factor advice: drop under this fraction
inline constexpr double kBiasImbalance = 1.2;    // last-quarter max/mean above this with a one-way bias ...
inline constexpr double kBiasOneWay = 0.9;       // ... moving the same way in this fraction of steps: rate too small

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

// The aux-loss-free balancing bias of the layer's most loaded expert (last quarter) over the last
// half of the rows: how far it moved and how steadily in one direction (docs/profile-format.md).
struct BiasFigures {
  bool recorded = false;       // finite and moving in the file (moe.bias_update_rate > 0)
  int64_t expert = 0;          // the most loaded expert of the last quarter
  int64_t steps = 0;           // steps spanned by the rows compared
  double moved = 0;            // its bias change over those steps (negative: pushed down)
  double per_step = 0;         // |moved| / steps
  double one_way = 0;          // fraction of row-to-row changes that lowered its bias
  bool too_small = false;      // one_way >= kBiasOneWay while max/mean stays above kBiasImbalance
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
  std::vector<ExpertShare> hot;   // share > kHotShareRatio x even share, hottest first
  std::vector<ExpertShare> cold;  // share < kColdShareRatio x even share, coldest first
  std::vector<int64_t> dead;      // experts with no assignment in the last quarter of the rows
  // Smallest capacity factor that would have dropped < kTargetDropFrac of the assignments, from
  // the recorded counts (over the run, and over the last quarter of the rows).
  double capacity_factor_1pct = 0, capacity_factor_1pct_last_quarter = 0;
  BiasFigures bias;
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
  // From RUN_DIR/config.yaml when readable (NaN otherwise), to word the advice.
  double capacity_factor = kNaN, bias_update_rate = kNaN;
};

// Smallest capacity factor cf (to 0.01) such that, with capacity ceil(cf * A / E) per expert and
// A = the row's assignments, sum over rows and experts of max(0, count - capacity) is below
// max_drop_frac x the assignments. counts: rows x E, row-major. 0 when there are no assignments.
double min_capacity_factor(const std::vector<int64_t>& counts, int64_t E, double max_drop_frac);
// Assignments over capacity for one cf (the figure min_capacity_factor bounds).
int64_t dropped_at(const std::vector<int64_t>& counts, int64_t E, double capacity_factor);

// The advice figures of layer `l` (hot, cold, dead, capacity factors, bias) and its advice lines;
// `s` is the summary being built (for the config values).
void add_layer_advice(LayerSummary& ls, const LoadBalanceData& lb, int64_t l, const ProfileSummary& s);

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
