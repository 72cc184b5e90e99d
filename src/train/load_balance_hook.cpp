#include "src/train/load_balance_hook.h"

#include <filesystem>

namespace moe {

LoadBalanceHook::LoadBalanceHook(const Config& c, const std::string& run_dir, bool lead, int64_t start_step)
    : every_(c.profile.every), num_experts_(c.moe.num_experts) {
  for (int64_t i = 0; i < c.model.n_layers; ++i)
    if (c.model.is_moe_layer(i)) moe_layers_.push_back(i);
  if (!lead || !c.profile.load_balance || moe_layers_.empty()) return;
  recorder_ = std::make_unique<LoadBalanceRecorder>((std::filesystem::path(run_dir) / "load_balance.h5").string(),
                                                    moe_layers_, num_experts_, every_, start_step);
  rows_.resize(moe_layers_.size());
}

void LoadBalanceHook::record(int64_t step, const Transformer& net, const ModelState& model, const PhaseTimes& t) {
  const auto stats = net.load_stats();
  std::vector<const LayerLoadStats*> rows;
  for (size_t k = 0; k < moe_layers_.size(); ++k) {
    rows_[k] = *stats[k];
    const float* bias = model.p.blocks[size_t(moe_layers_[k])].router_bias;
    rows_[k].bias.assign(bias, bias + num_experts_);
    rows.push_back(&rows_[k]);
  }
  recorder_->record(step, rows, t, {});
}

}  // namespace moe
