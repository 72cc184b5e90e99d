#include "src/model/recompute.h"

#include <algorithm>
#include <utility>

#include "moe/experts.h"
#include "src/core/error.h"
#include "src/model/phase_timer.h"

namespace moe {

Recompute parse_recompute(const std::string& mode) {
  if (mode == "none") return Recompute::none;
  if (mode == "block") return Recompute::block;
  if (mode == "attention") return Recompute::attention;
  MOE_CHECK(mode == "moe", "parallel.recompute " + mode);
  return Recompute::moe;
}

Recomputer::Recomputer(Recompute mode, const Config& c, const Dims& d) : mode_(mode), d_(d) {
  const size_t ND = size_t(d.N * d.D);
  bool any_moe = false, any_dense = false;
  for (int64_t i = 0; i < d.L; ++i) (c.model.is_moe_layer(i) ? any_moe : any_dense) = true;
  if (mode == Recompute::block) {
    block_in_.assign(size_t(d.L), std::vector<float>(ND));
    x_.resize(ND);
    attn_.resize(d);
    ffn_.x_in.resize(ND);
    ffn_.xn.resize(ND);
    ffn_.rstd.resize(size_t(d.N));
    if (any_dense) ffn_.dense.resize(d.N, d.F);
    if (any_moe) ffn_.moe.resize(d);
  } else if (mode == Recompute::attention) {
    attn_.resize(d);
  } else if (mode == Recompute::moe && any_moe && d.Fs > 0) {
    ffn_.moe.shared.resize(d.N, d.Fs);  // the experts' acts are sized by each forward (rows vary)
    ffn_.moe.shared_scratch.resize(d.N, d.Fs);
  }
}

void Recomputer::size_layer(bool moe_layer, AttentionActs& attn, FfnActs& ffn) const {
  const size_t ND = size_t(d_.N * d_.D);
  if (mode_ == Recompute::block) return;  // the layer keeps its input in block_in_ and its routing stats
  if (mode_ == Recompute::attention) attn.x_in.resize(ND);
  else attn.resize(d_);
  ffn.x_in.resize(ND);
  ffn.xn.resize(ND);
  ffn.rstd.resize(size_t(d_.N));
  if (!moe_layer) {
    ffn.dense.resize(d_.N, d_.F);
    return;
  }
  ffn.moe.resize(d_);
  if (mode_ == Recompute::moe) {  // these live in the workspace
    ffn.moe.shared = SwigluActs{};
    ffn.moe.shared_scratch = SwigluScratch{};
  }
}

void Recomputer::swap_expert_buffers(FfnActs& ffn) {
  MoeLayerState& s = ffn.moe;
  MoeLayerState& w = ffn_.moe;
  std::swap(s.experts, w.experts);
  std::swap(s.shared, w.shared);
  // The experts' backward scratch is as large as their activations: shared too.
  std::swap(s.dexpert_out, w.dexpert_out);
  std::swap(s.dexpert_in, w.dexpert_in);
  std::swap(s.expert_scratch, w.expert_scratch);
  std::swap(s.shared_scratch, w.shared_scratch);
}

BlockActsRef Recomputer::begin_forward(int64_t i, bool moe_layer, const float* x, AttentionActs& attn, FfnActs& ffn) {
  switch (mode_) {
    case Recompute::none:
      break;
    case Recompute::block:
      std::copy(x, x + d_.N * d_.D, block_in_[size_t(i)].begin());
      ffn_.moe.ctx = ffn.moe.ctx;
      return {&attn_, &ffn_};
    case Recompute::attention:
      return {&attn_, &ffn};
    case Recompute::moe:
      if (moe_layer) swap_expert_buffers(ffn);  // the layer writes them into the workspace's buffers
      break;
  }
  return {&attn, &ffn};
}

void Recomputer::end_forward(bool moe_layer, AttentionActs& attn, FfnActs& ffn) {
  if (mode_ == Recompute::block && moe_layer) {
    // The step's routing statistics stay with the layer (load_stats(), the balancing bias).
    ffn.moe.stats = ffn_.moe.stats;
    ffn.moe.losses = ffn_.moe.losses;
  } else if (mode_ == Recompute::attention) {
    std::copy(attn_.x_in.begin(), attn_.x_in.end(), attn.x_in.begin());
  } else if (mode_ == Recompute::moe && moe_layer) {
    swap_expert_buffers(ffn);
  }
}

BlockActsRef Recomputer::begin_backward(int64_t i, bool moe_layer, AttentionActs& attn, FfnActs& ffn,
                                        const BlockParams& p, const RerunBlockFn& rerun) {
  switch (mode_) {
    case Recompute::none:
      break;
    case Recompute::block:
      std::copy(block_in_[size_t(i)].begin(), block_in_[size_t(i)].end(), x_.begin());
      ffn_.moe.ctx = ffn.moe.ctx;
      rerun(x_.data(), attn_, ffn_);
      return {&attn_, &ffn_};
    case Recompute::attention: {
      PhaseScope timed(Phase::attention);
      attention_core_forward(attn_, attn.x_in.data(), p, d_);
      return {&attn_, &ffn};
    }
    case Recompute::moe: {
      if (!moe_layer) break;
      PhaseScope timed(Phase::experts);
      const MoeLayerState& s = ffn.moe;
      // Expert tensor parallelism over dp ranks computes on the rows gathered over etp (kept).
      const bool gathered = d_.etp > 1 && d_.tp != d_.etp;
      experts_forward(ffn_.moe.experts, gathered ? s.etp_rows.data() : s.expert_in.data(), p.experts_w1,
                      p.experts_w3, p.experts_w2, gathered ? s.etp_gather.all_offsets().data() : s.offsets.data(),
                      int64_t(s.offsets.size()) - 1, d_.D, d_.Fe);
      if (d_.Fs > 0) swiglu_hidden_forward(ffn_.moe.shared, ffn.xn.data(), p.shared_w1, p.shared_w3, d_.N, d_.D, d_.Fs);
      swap_expert_buffers(ffn);
      break;
    }
  }
  return {&attn, &ffn};
}

void Recomputer::end_backward(bool moe_layer, FfnActs& ffn) {
  if (mode_ == Recompute::moe && moe_layer) swap_expert_buffers(ffn);
}

size_t Recomputer::floats() const {
  size_t n = x_.size() + attention_acts_floats(attn_) + ffn_acts_floats(ffn_);
  for (const auto& b : block_in_) n += b.size();
  return n;
}

}  // namespace moe
