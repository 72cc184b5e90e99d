// The compute copy of the weights under train.precision bf16 | fp16 (docs/precision.md): at the
// start of each step the fp32 master weights are rounded once (round-to-nearest-even) into this
// copy, which forward and backward read, so no GEMM re-rounds a weight. Norm weights and the
// router (weight and balancing bias) are copied exactly: RMSNorm and routing run in fp32. The copy
// keeps each half value widened to fp32, so every op keeps its fp32 signature. Under fp32 there is
// no copy and refresh() returns the master views.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/precision.h"
#include "src/train/loss_scaler.h"
#include "src/train/model_state.h"

namespace moe {

class ComputeWeights {
 public:
  ComputeWeights(const Config& c, const ParamTable& table);
  // Rounds the master weights of `model` into the copy; returns the views forward/backward use.
  const ModelParams& refresh(const ModelState& model);
  Precision precision() const { return prec_; }
  int64_t bytes() const { return int64_t(buf_.size() * sizeof(float)); }
  // Whether the tensor named `name` is rounded (false: kept exact).
  static bool rounds(const std::string& name);

 private:
  Precision prec_;
  std::vector<bool> rounded_;  // per table entry
  std::vector<float> buf_;
  ModelParams p_{};
};

// metrics.jsonl: the compute copy's bytes (mem_compute_weights, added to mem_bytes) and, under
// fp16, loss_scale and skipped_steps.
void add_precision_metrics(nlohmann::json& rec, const ComputeWeights& w, const LossScaler& s);

}  // namespace moe
