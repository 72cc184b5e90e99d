#include "src/train/load_balance_hook.h"

#include <filesystem>

#include "src/core/error.h"

namespace moe {

LoadBalanceHook::LoadBalanceHook(const Config& c, const std::string& run_dir, bool lead, int64_t start_step)
    : every_(c.profile.every), num_experts_(c.moe.num_experts) {
  for (int64_t i = 0; i < c.model.n_layers; ++i)
    if (c.model.is_moe_layer(i)) moe_layers_.push_back(i);
  enabled_ = c.profile.load_balance && !moe_layers_.empty();
  if (!lead || !enabled_) return;
  recorder_ = std::make_unique<LoadBalanceRecorder>((std::filesystem::path(run_dir) / "load_balance.h5").string(),
                                                    moe_layers_, num_experts_, every_, start_step);
  rows_.resize(moe_layers_.size());
}

PhaseTimes phase_times(const PhaseTimer& t, double step_seconds) {
  PhaseTimes p;
  p.attention = t.seconds(Phase::attention);
  p.route = t.seconds(Phase::route);
  p.dispatch = t.seconds(Phase::dispatch);
  p.experts = t.seconds(Phase::experts);
  p.combine = t.seconds(Phase::combine);
  p.optimizer = t.seconds(Phase::optimizer);
  p.comm_wait = t.seconds(Phase::comm_wait);
  p.step = step_seconds;
  return p;
}

void gather_a2a_bytes(const std::vector<const TokenDispatcher*>& dispatchers, comm::Communicator& ep,
                      std::vector<int64_t>& out) {
  out.clear();
  const int P = ep.size();
  if (P == 1) return;
  std::vector<int64_t> mine(size_t(P), 0);
  for (const TokenDispatcher* d : dispatchers) {
    const auto* epd = dynamic_cast<const EpDispatcher*>(d);
    if (!epd || epd->sent_bytes().empty()) continue;
    MOE_CHECK(int(epd->sent_bytes().size()) == P, "dispatcher of another ep group");
    for (int r = 0; r < P; ++r) mine[size_t(r)] += epd->sent_bytes()[size_t(r)];
  }
  out.resize(size_t(P) * size_t(P));
  ep.allgather(mine.data(), out.data(), int64_t(P) * int64_t(sizeof(int64_t)));
}

void LoadBalanceHook::record(int64_t step, const Transformer& net, const ModelState& model, double step_seconds,
                             comm::Communicator& ep) {
  gather_a2a_bytes(net.moe_dispatchers(), ep, a2a_);
  record(step, net.load_stats(), a2a_, net.phase_timer(), model, step_seconds);
}

void LoadBalanceHook::record(int64_t step, const std::vector<const LayerLoadStats*>& stats,
                             const std::vector<int64_t>& a2a, const PhaseTimer& timer, const ModelState& model,
                             double step_seconds) {
  if (!recorder_) return;
  std::vector<const LayerLoadStats*> rows;
  for (size_t k = 0; k < moe_layers_.size(); ++k) {
    rows_[k] = *stats[k];
    const float* bias = model.p.blocks[size_t(moe_layers_[k])].router_bias;
    if (stats[k]->bias.empty()) rows_[k].bias.assign(bias, bias + num_experts_);  // else: the owner stage's
    rows.push_back(&rows_[k]);
  }
  recorder_->record(step, rows, phase_times(timer, step_seconds), a2a);
}

}  // namespace moe
