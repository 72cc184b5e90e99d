// The trainer's side of load-balance profiling: on rank 0, every profile.every steps, the global
// routing statistics of each MoE layer (with the balancing bias after the step's update) go to
// RUN_DIR/load_balance.h5 through LoadBalanceRecorder.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "src/model/transformer.h"
#include "src/train/config.h"
#include "src/train/load_balance_recorder.h"
#include "src/train/model_state.h"

namespace moe {

class LoadBalanceHook {
 public:
  LoadBalanceHook(const Config& c, const std::string& run_dir, bool lead, int64_t start_step);
  bool wants(int64_t step) const { return recorder_ && step % every_ == 0; }
  void record(int64_t step, const Transformer& net, const ModelState& model, const PhaseTimes& t);

 private:
  std::unique_ptr<LoadBalanceRecorder> recorder_;
  std::vector<int64_t> moe_layers_;
  std::vector<LayerLoadStats> rows_;
  int64_t every_ = 1, num_experts_ = 0;
};

}  // namespace moe
