// Per-rank memory of a layout (docs/planning.md, "Memory"): weights, gradients, optimizer state,
// stored activations of the in-flight micro-batches, and all-to-all buffers, in bytes.
#pragma once
#include <cstdint>
#include <string>

#include "src/plan/hardware.h"
#include "src/train/config.h"

namespace moe::plan {

struct MemoryBreakdown {
  int64_t stage = 0;         // the pipeline stage with the largest total (the one that must fit)
  double params = 0;         // weights in the compute dtype (ZeRO-3: shard + two gathered stages)
  double grads = 0;          // gradients in the compute dtype (ZeRO-2/3: shard + two stages)
  double optimizer = 0;      // AdamW m and v (fp32), plus fp32 master weights under bf16/fp16
  double activations = 0;    // stored for backward, all in-flight micro-batches, + logits
  double a2a_buffers = 0;    // expert-parallel dispatch send + receive buffers
  double staging = 0;        // ZeRO all-gather staging (the trainer's mem_comm)
  double total() const { return params + grads + optimizer + activations + a2a_buffers + staging; }
};

// Bytes per element of the compute dtype.
int64_t dtype_bytes(const std::string& precision);

// Micro-batches whose activations stage `stage` holds at its peak: 1f1b keeps pp - stage
// (at most m), gpipe keeps all m.
int64_t inflight_microbatches(const std::string& schedule, int64_t pp, int64_t m, int64_t stage);

// Activation bytes stored per token of one micro-batch on one rank for one layer (before the
// in-flight factor), for `recompute` mode; `moe_layer` picks the FFN kind. `a2a_factor` scales the
// expert side (tokens an expert rank receives, relative to the mean).
double layer_activation_bytes_per_token(const Config& c, const Hardware& hw, bool moe_layer,
                                        const std::string& recompute, double a2a_factor);

// Bytes per token of the workspace that parallel.recompute rebuilds into (src/model/recompute.cpp):
// block a whole block plus its input, attention one attention sub-layer, moe one MoE layer's
// experts and shared experts; none 0.
double recompute_workspace_bytes_per_token(const Config& c, const Hardware& hw, double a2a_factor);

// Memory of the config's own parallel layout on `hw`. `a2a_factor`: the all-to-all receive
// buffer relative to an even split (capacity_factor when dropping tokens, else the expected
// max/mean expert load).
MemoryBreakdown estimate_memory(const Config& c, const Hardware& hw, double a2a_factor);
MemoryBreakdown stage_memory(const Config& c, const Hardware& hw, double a2a_factor, int64_t stage);

}  // namespace moe::plan
