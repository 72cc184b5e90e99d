// ZeRO stage 3 under train.precision bf16 | fp16: the compute copy of the weights
// (src/train/precision_weights.h) made stage by stage. These hooks wrap Zero3Params: once a stage
// is gathered into the fp32 master buffer, its range (the stage's buckets) is rounded into the
// compute copy; when Zero3Params releases the stage, the copy's range is released too. So the
// copy never holds more than the stages in use, and never a stale range: every stage is released
// before the optimizer updates the master (begin_step() drops any left over, to be sure).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "src/model/transformer.h"
#include "src/parallel/zero3.h"
#include "src/train/precision_weights.h"

namespace moe {

class Zero3ComputeHooks final : public ParamStageHooks {
 public:
  // Puts `w` in per-range mode (its whole copy released). All references must outlive the hooks.
  Zero3ComputeHooks(Zero3Params& z3, const ZeroPartition& part, int64_t num_layers, ComputeWeights& w,
                    const ModelState& model);

  void before_use(int64_t stage, bool backward) override;
  void after_use(int64_t stage, bool backward) override;
  // Before each step's forward: releases any stage still rounded from the previous step.
  void begin_step();

 private:
  void release(int64_t stage);

  Zero3Params& z3_;
  ComputeWeights& w_;
  const ModelState& model_;
  std::vector<std::vector<std::pair<int64_t, int64_t>>> ranges_;  // index stage + 1: float ranges
  std::vector<char> rounded_;                                     // index stage + 1
};

}  // namespace moe
