// Estimated time of one training step for the config's layout (docs/planning.md, "Step time"):
// a roofline per group of ops, alpha-beta collectives, the pipeline bubble and expert imbalance.
#pragma once
#include <cstdint>

#include "src/plan/hardware.h"
#include "src/train/config.h"

namespace moe::plan {

struct StepBreakdown {
  int64_t stage = 0;      // the slowest pipeline stage (it sets the pace)
  double compute = 0;     // GEMMs, attention and memory-bound ops at an even expert load
  double recompute = 0;   // forward work redone in backward
  double imbalance = 0;   // the busiest expert rank's extra work (max/mean - 1)
  double tp_comm = 0;     // tensor-parallel all-reduces of activations
  double ep_comm = 0;     // expert all-to-all (dispatch, combine) and expert-tp collectives
  double pp_comm = 0;     // pipeline sends of activations and their gradients
  double bubble = 0;      // pipeline fill and drain: (pp - 1) micro-batch slots
  double dp_comm = 0;     // gradient reduction and ZeRO gathers (not overlapped)
  double optimizer = 0;   // AdamW update, memory bound
  double total() const {
    return compute + recompute + imbalance + tp_comm + ep_comm + pp_comm + bubble + dp_comm + optimizer;
  }
};

// The fraction of pipeline time lost to the bubble: (pp - 1) / (m + pp - 1).
double bubble_fraction(int64_t pp, int64_t microbatches);

// Kernel calls of one micro-batch's forward + backward (the trainer's op sequence in
// src/model/attention.cpp, src/model/mlp.cpp, moe/moe_layer.cpp), charged op_overhead each.
double kernel_calls(const Config& c, int64_t stage);
// Blocking collectives of one step on a rank of `stage` (each charged sync_overhead).
double collective_calls(const Config& c, int64_t stage);

// `imbalance`: max over mean tokens per expert rank (1 = perfectly even). `threads`: threads per
// rank on CPU profiles (0: what the trainer picks, cores / ranks); ignored without `cores`.
StepBreakdown estimate_step(const Config& c, const Hardware& hw, double imbalance, int64_t threads = 0);

}  // namespace moe::plan
