// `moe plan`: every valid layout of a config on N ranks, with its memory per rank and step time,
// the ones that fit ranked by step time, and why the others do not fit (docs/planning.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/plan/hardware.h"
#include "src/plan/layout.h"
#include "src/plan/memory.h"
#include "src/plan/step_time.h"
#include "src/train/config.h"

namespace moe::plan {

struct PlanInputs {
  Config config;
  Hardware hardware;
  double imbalance = 1.0;  // max / mean tokens per expert rank
  int64_t threads = 0;     // threads per CPU rank (0: cores / ranks, as the trainer picks)
};

struct LayoutEstimate {
  Layout layout;
  MemoryBreakdown memory;
  StepBreakdown time;
  double tokens_per_s = 0;
  double mfu = 0;
  bool fits = false;
  std::string reason;  // why it does not fit (empty when it fits)
};

// The all-to-all receive buffer relative to an even split: the capacity factor when tokens are
// dropped, else (dropless) the expected max/mean load.
double a2a_buffer_factor(const Config& c, double imbalance);

LayoutEstimate estimate_layout(const PlanInputs& in, const Layout& l);

// "needs 92.1 GiB > 80 GiB memory: optimizer state 48 GiB; try zero_stage 1"
std::string fit_reason(const Layout& l, const MemoryBreakdown& m, double capacity_bytes);

struct PlanResult {
  int64_t world = 0;
  int64_t considered = 0;
  std::vector<LayoutEstimate> fitting;      // fastest first
  std::vector<LayoutEstimate> not_fitting;  // smallest memory first
  bool has_configured = false;              // the config's own parallel.* layout is valid here
  LayoutEstimate configured;
};

PlanResult make_plan(const PlanInputs& in, int64_t world, const EnumerateOptions& o = {});

// Median of `max_over_mean` over the logged steps of RUN_DIR/metrics.jsonl (DataError if absent).
double imbalance_from_run(const std::string& run_dir);

}  // namespace moe::plan
