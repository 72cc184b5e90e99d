// Reading a run's profile inputs: RUN_DIR/load_balance.h5 (docs/profile-format.md) and
// RUN_DIR/metrics.jsonl. Every problem is a DataError naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moe::profile {

// load_balance.h5, whole. S = rows, L = MoE layers, E = experts; arrays are row-major.
struct LoadBalanceData {
  std::string path;
  int64_t version = 0, num_experts = 0, every = 0;
  std::vector<int64_t> moe_layers;            // (L)
  std::vector<int64_t> step;                  // (S)
  std::vector<int64_t> tokens_per_expert;     // (S, L, E)
  std::vector<int64_t> dropped;               // (S, L)
  std::vector<double> entropy, aux_loss, z_loss, max_over_mean, cv;  // (S, L)
  std::vector<float> bias;                    // (S, L, E), NaN where not recorded
  std::vector<double> phase_seconds;          // (S, P)
  std::vector<std::string> phase_names;       // (P)
  int64_t ep = 0;                             // 0: no a2a_bytes dataset
  std::vector<int64_t> a2a_bytes;             // (S, ep, ep)

  int64_t rows() const { return int64_t(step.size()); }
  int64_t layers() const { return int64_t(moe_layers.size()); }
};

LoadBalanceData read_load_balance(const std::string& path);

// One metrics.jsonl record (the keys the report uses).
struct MetricsRow {
  int64_t step = 0;
  double loss = 0;
  double tokens_per_s = 0;
};

// Rows in step order. A resumed or restarted run appends rows whose steps go back: the later rows
// replace the earlier ones from that step on, so the result is the timeline of the latest run.
std::vector<MetricsRow> read_metrics(const std::string& path);

}  // namespace moe::profile
