#include "src/model/transformer.h"

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"
#include "kernels/precision.h"
#include "src/parallel/tensor_parallel.h"

namespace moe {

Transformer::Transformer(const Config& c, int64_t batch, const DispatcherFactory& make_dispatcher,
                         comm::Communicator* tp, comm::Communicator* etp, StageBlocks stage)
    : c_(c), d_(make_dims(c, batch, tp ? tp->size() : 1, etp ? etp->size() : 1)), tp_(tp), etp_(etp),
      recompute_(parse_recompute(c.parallel.recompute), c, d_) {
  const size_t ND = size_t(d_.N * d_.D);
  const int64_t first = stage.begin, last = stage.end < 0 ? d_.L : stage.end;
  const size_t head = last == d_.L ? 1 : 0;  // only the stage owning the last block has the head
  inputs_.resize(size_t(d_.N));
  targets_.resize(size_t(d_.N));
  x_.resize(ND);
  attn_.resize(size_t(d_.L));
  ffn_.resize(size_t(d_.L));
  dispatchers_.resize(size_t(d_.L));
  for (int64_t i = first; i < last; ++i) {
    recompute_.size_layer(c.model.is_moe_layer(i), attn_[size_t(i)], ffn_[size_t(i)]);
    if (c.model.is_moe_layer(i))
      dispatchers_[size_t(i)] = make_dispatcher ? make_dispatcher(i) : std::make_unique<LocalDispatcher>();
  }
  xf_.resize(head * ND);
  xnf_.resize(head * ND);
  rstdf_.resize(head * size_t(d_.N));
  logits_.resize(head * size_t(d_.N * d_.V));
  lse_.resize(head * size_t(d_.N));
  losses_.resize(head * size_t(d_.N));
  dx_.resize(ND);
  dxn_.resize(ND);
  dlogits_.resize(head * size_t(d_.N * d_.V));
  dlosses_.resize(head * size_t(d_.N));
  attn_scratch_.resize(d_);
  dense_scratch_.resize(d_.N, d_.F);
}

StepLosses Transformer::forward(const int32_t* tokens, const ModelParams& p, const SumReducer& reduce_sum) {
  before_use(-1, false);
  embed_forward(tokens, p);
  after_use(-1, false);
  StepLosses out;
  for (int64_t i = 0; i < d_.L; ++i) {
    before_use(i, false);
    block_forward(i, p.blocks[size_t(i)], reduce_sum, out);
    after_use(i, false);
  }
  before_use(d_.L, false);
  head_forward(p, out);
  after_use(d_.L, false);
  return out;
}

void Transformer::load_tokens(const int32_t* tokens) {
  const int64_t T = d_.T;
  for (int64_t b = 0; b < d_.B; ++b) {
    const int32_t* row = tokens + b * (T + 1);
    std::copy(row, row + T, inputs_.begin() + b * T);
    std::copy(row + 1, row + T + 1, targets_.begin() + b * T);
  }
}

void Transformer::embed_forward(const int32_t* tokens, const ModelParams& p) {
  load_tokens(tokens);
  ops::embedding_forward(x_.data(), inputs_.data(), p.tok_embeddings, d_.N, d_.D);
}

void Transformer::block_forward(int64_t i, const BlockParams& bp, const SumReducer& reduce_sum, StepLosses& out) {
  reduce_sum_ = reduce_sum;  // a block recompute re-runs the forward with it (callers may skip forward())
  const bool moe = c_.model.is_moe_layer(i);
  const BlockActsRef acts = recompute_.begin_forward(i, moe, x_.data(), attn_[size_t(i)], ffn_[size_t(i)]);
  run_block(i, x_.data(), *acts.attn, *acts.ffn, bp, reduce_sum, out);
  recompute_.end_forward(moe, attn_[size_t(i)], ffn_[size_t(i)]);
}

void Transformer::run_block(int64_t i, float* x, AttentionActs& a, FfnActs& f, const BlockParams& bp,
                            const SumReducer& reduce_sum, StepLosses& out) {
  const size_t ND = size_t(d_.N * d_.D);
  {
    PhaseScope timed(Phase::attention);
    attention_layer_forward(x, a, bp, d_, tp_);
  }
  std::memcpy(f.x_in.data(), x, sizeof(float) * ND);
  ops::rmsnorm_forward(f.xn.data(), f.rstd.data(), x, bp.ffn_norm, d_.N, d_.D, d_.eps);
  if (c_.model.is_moe_layer(i)) {
    moe_layer_forward(x, f.moe, f.xn.data(), bp, d_, c_.moe, *dispatchers_[size_t(i)], reduce_sum, etp_);
    out.aux += f.moe.losses.aux;
    out.z += f.moe.losses.z;
  } else if (d_.tp == 1) {
    swiglu_mlp_forward(x, f.dense, f.xn.data(), bp.w1, bp.w3, bp.w2, d_.N, d_.D, d_.F);
  } else {
    // w1/w3 column-parallel, w2 row-parallel: g's all-reduce sums the ranks' partial outputs.
    ffn_partial_.assign(ND, 0.0f);
    swiglu_mlp_forward(ffn_partial_.data(), f.dense, f.xn.data(), bp.w1, bp.w3, bp.w2, d_.N, d_.D, d_.F);
    tp_allreduce(tp_, ffn_partial_.data(), int64_t(ffn_partial_.size()));
    for (size_t j = 0; j < ND; ++j) x[j] += ffn_partial_[j];
  }
}

void Transformer::head_forward(const ModelParams& p, StepLosses& out) {
  std::memcpy(xf_.data(), x_.data(), sizeof(float) * x_.size());
  ops::rmsnorm_forward(xnf_.data(), rstdf_.data(), xf_.data(), p.norm, d_.N, d_.D, d_.eps);
  ops::matmul_forward(logits_.data(), xnf_.data(), p.output, d_.N, d_.D, d_.V);
  ops::cross_entropy_forward(losses_.data(), lse_.data(), logits_.data(), targets_.data(), d_.N, d_.V);
  for (float l : losses_) out.lm_sum += l;
}

void Transformer::backward(const ModelParams& p, const ModelParams& g, double global_tokens,
                           const GradsReadyFn& ready) {
  before_use(d_.L, true);
  head_backward(p, g, global_tokens);
  after_use(d_.L, true);
  if (ready) ready(d_.L);
  for (int64_t i = d_.L - 1; i >= 0; --i) {
    before_use(i, true);
    block_backward(i, p.blocks[size_t(i)], g.blocks[size_t(i)]);
    after_use(i, true);
    if (ready) ready(i);
  }
  embed_backward(g);
  if (ready) ready(-1);
}

void Transformer::head_backward(const ModelParams& p, const ModelParams& g, double global_tokens) {
  std::fill(dlosses_.begin(), dlosses_.end(), float(loss_scale() / global_tokens));  // fp16: scaled loss
  std::fill(dlogits_.begin(), dlogits_.end(), 0.0f);
  std::fill(dxn_.begin(), dxn_.end(), 0.0f);
  std::fill(dx_.begin(), dx_.end(), 0.0f);
  ops::cross_entropy_backward(dlogits_.data(), dlosses_.data(), logits_.data(), lse_.data(), targets_.data(), d_.N,
                              d_.V);
  ops::matmul_backward(dxn_.data(), g.output, dlogits_.data(), xnf_.data(), p.output, d_.N, d_.D, d_.V);
  ops::rmsnorm_backward(dx_.data(), g.norm, dxn_.data(), xf_.data(), p.norm, rstdf_.data(), d_.N, d_.D);
}

void Transformer::block_backward(int64_t i, const BlockParams& bp, const BlockParams& bg) {
  const bool moe = c_.model.is_moe_layer(i);
  const BlockActsRef acts = recompute_.begin_backward(
      i, moe, attn_[size_t(i)], ffn_[size_t(i)], bp, [&](float* x, AttentionActs& a, FfnActs& f) {
        StepLosses unused;  // the forward counted this block's losses and routing statistics
        if (moe) dispatchers_[size_t(i)]->set_recomputing(true);
        run_block(i, x, a, f, bp, reduce_sum_, unused);
        if (moe) dispatchers_[size_t(i)]->set_recomputing(false);
      });
  FfnActs& f = *acts.ffn;
  std::fill(dxn_.begin(), dxn_.end(), 0.0f);
  if (c_.model.is_moe_layer(i)) {
    moe_layer_backward(dxn_.data(), dx_.data(), f.moe, f.xn.data(), bp, bg, d_, c_.moe, *dispatchers_[size_t(i)],
                       etp_);
  } else {
    swiglu_mlp_backward(dxn_.data(), bg.w1, bg.w3, bg.w2, dx_.data(), f.dense, dense_scratch_, f.xn.data(), bp.w1,
                        bp.w3, bp.w2, d_.N, d_.D, d_.F);
    tp_allreduce(tp_, dxn_.data(), int64_t(dxn_.size()));  // f's backward over the hidden-unit slices
  }
  ops::rmsnorm_backward(dx_.data(), bg.ffn_norm, dxn_.data(), f.x_in.data(), bp.ffn_norm, f.rstd.data(), d_.N, d_.D);
  {
    PhaseScope timed(Phase::attention);
    attention_layer_backward(dx_.data(), *acts.attn, bp, bg, attn_scratch_, d_, tp_);
  }
  recompute_.end_backward(moe, ffn_[size_t(i)]);
}

void Transformer::embed_backward(const ModelParams& g) {
  ops::embedding_backward(g.tok_embeddings, dx_.data(), inputs_.data(), d_.N, d_.D);
}

void Transformer::set_routing_step(int64_t step, int64_t token_offset, bool training) {
  for (int64_t i = 0; i < d_.L; ++i) {
    if (!c_.model.is_moe_layer(i)) continue;
    RoutingContext& ctx = ffn_[size_t(i)].moe.ctx;
    ctx.seed = c_.train.seed;
    ctx.layer = i;
    ctx.step = step;
    ctx.token_offset = token_offset;
    ctx.training = training;
  }
}

std::vector<const LayerLoadStats*> Transformer::load_stats() const {
  std::vector<const LayerLoadStats*> out;
  for (int64_t i = 0; i < d_.L; ++i)
    if (c_.model.is_moe_layer(i)) out.push_back(&ffn_[size_t(i)].moe.stats);
  return out;
}

std::vector<const TokenDispatcher*> Transformer::moe_dispatchers() const {
  std::vector<const TokenDispatcher*> out;
  for (const auto& d : dispatchers_)
    if (d) out.push_back(d.get());
  return out;
}

int64_t Transformer::activation_bytes() const {
  size_t n = x_.size() + xf_.size() + xnf_.size() + rstdf_.size() + logits_.size() + lse_.size() + losses_.size();
  for (const auto& a : attn_) n += attention_acts_floats(a);
  for (const auto& f : ffn_) n += ffn_acts_floats(f);
  n += recompute_.floats();
  return int64_t(n * sizeof(float));
}

}  // namespace moe
