// The compute copy of the weights under train.precision bf16 | fp16 (docs/precision.md): at the
// start of each step the fp32 master weights are rounded once (round-to-nearest-even) into this
// copy, which forward and backward read, so no GEMM re-rounds a weight. Norm weights and the
// router (weight and balancing bias) are copied exactly: RMSNorm and routing run in fp32. The copy
// keeps each half value widened to fp32, so every op keeps its fp32 signature. Under fp32 there is
// no copy and refresh() returns the master views.
// Under ZeRO stage 3 the master buffer is never whole, so the copy is made per range instead
// (set_per_range(), src/train/zero3_compute.h): each stage is rounded when gathered and released
// with it, and refresh() only returns the views. Under ZeRO 1 and 2 the master is sharded too: each
// rank rounds its owned ranges and the copy is all-gathered (src/train/sharded_master.h).
#pragma once
#include <algorithm>
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

  // Pipeline stages: the tensors flagged in `skip` (other stages', one flag per table parameter) are
  // never rounded, and their part of the copy is released.
  void skip_tensors(const ParamTable& table, const std::vector<bool>& skip);
  // Stage 3 mode: the whole copy is released now; refresh() no longer rounds anything.
  void set_per_range();
  bool per_range() const { return per_range_; }
  // Rounds (or copies, for exact tensors) the master floats [begin, end) of `model` into the copy.
  void refresh_range(const ModelState& model, int64_t begin, int64_t end);
  // Returns the copy's floats [begin, end) to the OS (they read as zero until refreshed again).
  void release_range(int64_t begin, int64_t end);
  // Per-range mode: the most bytes of the copy held in physical memory at a sample (mincore),
  // since the last reset.
  void sample_resident();
  int64_t peak_resident_bytes() const { return peak_resident_; }
  void reset_peak() { peak_resident_ = 0; }
  // The flat copy (per-range mode: ZeRO gathers fill it; src/train/sharded_master.h).
  float* data() { return buf_.data(); }
  // Whether the tensor named `name` is rounded (false: kept exact).
  static bool rounds(const std::string& name);
  // Where the optimizer may write table tensor i's rounded copy while it updates the tensor (one
  // pass, ops::adamw_update_fused), or null: fp32, per-range mode, exact or skipped tensors. A
  // tensor handed out is taken as fresh, so the next refresh() does not round it again; master
  // weights changed after the optimizer step need invalidate().
  float* fused_target(size_t i);
  void invalidate() { std::fill(fresh_.begin(), fresh_.end(), false); }

 private:
  std::vector<bool> skip_;
  Precision prec_;
  std::vector<bool> rounded_;  // per table entry
  std::vector<bool> fresh_;    // per table entry: rounded by the optimizer since the last refresh()
  std::vector<int64_t> offset_;  // per table entry: where its floats start
  PageVector buf_;  // untouched until rounded into (ZeRO 3: only the stages in use)
  ModelParams p_{};
  bool per_range_ = false;
  int64_t peak_resident_ = 0;
};

// metrics.jsonl: the compute copy's bytes (mem_compute_weights, added to mem_bytes; per-range mode:
// its peak resident bytes since the last log, then the peak is reset) and, under fp16, loss_scale
// and skipped_steps.
void add_precision_metrics(nlohmann::json& rec, ComputeWeights& w, const LossScaler& s);

}  // namespace moe
