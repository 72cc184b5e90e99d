// The step's routing statistics over micro-batches and pipeline stages (src/train/train_step.h).
#include <algorithm>

#include "moe/ep_dispatcher.h"
#include "moe/router.h"
#include "src/core/error.h"
#include "src/train/micro_batches.h"
#include "src/train/train_step.h"

namespace moe {

void TrainStep::accumulate_stats(const Transformer& net, int64_t vstage, bool first_micro) {
  const auto all = net.load_stats();  // every MoE layer of the model, in layer order
  size_t k_all = 0;
  for (int64_t i = 0; i < c_.model.n_layers; ++i) {
    if (!c_.model.is_moe_layer(i)) continue;
    const LayerLoadStats& s = *all[k_all++];
    if (i < layout_.begin(vstage) || i >= layout_.end(vstage)) continue;  // another chunk's or stage's
    const size_t k = size_t(std::find(moe_layers_.begin(), moe_layers_.end(), i) - moe_layers_.begin());
    add_micro_batch_stats(stats_[k], s, first_micro, m_);
  }
}

std::vector<const LayerLoadStats*> TrainStep::load_stats() const {
  std::vector<const LayerLoadStats*> out;
  for (const auto& s : stats_) out.push_back(&s);
  return out;
}

StepRouting TrainStep::routing() const {
  StepRouting r = summarize_routing(load_stats());
  if (pp_ == 1) return r;
  int64_t counts[2] = {0, 0};
  for (const auto& s : stats_) {
    counts[0] += s.dropped;
    counts[1] += s.assignments;
  }
  grid_.pp->allreduce_sum(counts, 2);
  double worst = r.worst_max_over_mean;
  grid_.pp->allreduce_max(&worst, 1);
  r.dropped_frac = counts[1] > 0 ? double(counts[0]) / double(counts[1]) : 0.0;
  r.worst_max_over_mean = worst;
  return r;
}

void TrainStep::accumulate_a2a(const Transformer& net) {
  for (const TokenDispatcher* d : net.moe_dispatchers()) {
    const auto* epd = dynamic_cast<const EpDispatcher*>(d);
    if (!epd || epd->sent_bytes().empty()) continue;
    MOE_CHECK(epd->sent_bytes().size() == a2a_sent_.size(), "dispatcher of another ep group");
    for (size_t r = 0; r < a2a_sent_.size(); ++r) a2a_sent_[r] += epd->sent_bytes()[r];
  }
}

void TrainStep::update_balancing_bias(ModelState& model) const {
  if (c_.moe.bias_update_rate <= 0) return;
  for (size_t k = 0; k < moe_layers_.size(); ++k) {
    float* bias = model.p.blocks[size_t(moe_layers_[k])].router_bias;
    MOE_CHECK(bias != nullptr, "layer " + std::to_string(moe_layers_[k]) + " has no balancing bias");
    const LayerLoadStats& s = stats_[k];  // the step's global counts, summed over micro-batches
    const std::vector<float> next = next_balancing_bias(bias, s.tokens_per_expert, s.assignments,
                                                        c_.moe.router == "expert_choice" ? 0.0 : c_.moe.bias_update_rate);
    std::copy(next.begin(), next.end(), bias);
  }
}

void TrainStep::record_load_balance(LoadBalanceHook& hook, int64_t step, const ModelState& model, double seconds) {
  // Every MoE layer's statistics, from the stage that owns it (zeros elsewhere, summed over pp).
  const int64_t E = c_.moe.num_experts, W = 2 * E + 5;
  std::vector<int64_t> all_moe;
  for (int64_t i = 0; i < c_.model.n_layers; ++i)
    if (c_.model.is_moe_layer(i)) all_moe.push_back(i);
  std::vector<double> buf(all_moe.size() * size_t(W), 0.0);
  for (size_t k = 0; k < moe_layers_.size(); ++k) {
    const size_t g = size_t(std::find(all_moe.begin(), all_moe.end(), moe_layers_[k]) - all_moe.begin());
    const LayerLoadStats& s = stats_[k];
    double* row = buf.data() + g * size_t(W);
    for (int64_t e = 0; e < E; ++e) row[e] = double(s.tokens_per_expert[size_t(e)]);
    row[E] = double(s.dropped);
    row[E + 1] = double(s.assignments);
    row[E + 2] = s.entropy;
    row[E + 3] = s.aux_loss;
    row[E + 4] = s.z_loss;
    const float* bias = model.p.blocks[size_t(moe_layers_[k])].router_bias;  // after the step's update
    if (bias) std::copy(bias, bias + E, row + E + 5);
  }
  if (pp_ > 1) grid_.pp->allreduce_sum(buf.data(), int64_t(buf.size()));
  std::vector<LayerLoadStats> layers(all_moe.size());
  std::vector<const LayerLoadStats*> ptrs;
  for (size_t g = 0; g < all_moe.size(); ++g) {
    const double* row = buf.data() + g * size_t(W);
    LayerLoadStats& s = layers[g];
    for (int64_t e = 0; e < E; ++e) s.tokens_per_expert.push_back(int64_t(row[e]));
    s.dropped = int64_t(row[E]);
    s.assignments = int64_t(row[E + 1]);
    s.entropy = row[E + 2];
    s.aux_loss = row[E + 3];
    s.z_loss = row[E + 4];
    s.bias.assign(row + E + 5, row + 2 * E + 5);
    ptrs.push_back(&s);
  }
  // The ep x ep all-to-all bytes of this stage's layers, summed over the stages.
  std::vector<int64_t> a2a;
  comm::Communicator& ep = *grid_.ep;
  if (ep.size() > 1) {
    a2a.resize(a2a_sent_.size() * a2a_sent_.size());
    ep.allgather(a2a_sent_.data(), a2a.data(), int64_t(a2a_sent_.size() * sizeof(int64_t)));
    if (pp_ > 1) grid_.pp->allreduce_sum(a2a.data(), int64_t(a2a.size()));
  }
  hook.record(step, ptrs, a2a, slots_.front()->phase_timer(), model, seconds);
}

}  // namespace moe
