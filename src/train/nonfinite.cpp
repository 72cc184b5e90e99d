#include "src/train/nonfinite.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>
#include <tuple>

#include "kernels/ops.h"
#include "src/model/attention.h"
#include "src/model/mlp.h"
#include "src/parallel/tensor_parallel.h"

namespace moe {

namespace {

// The first activation (in forward order) that holds a non-finite value on this rank.
struct FirstBad {
  int64_t order = -1;  // position in forward order; -1 = none yet
  std::string tensor;
  int64_t count = 0;   // non-finite values in that tensor
};

class ActivationScan {
 public:
  void check(const std::string& tensor, const float* v, size_t n) {
    const int64_t order = next_++;
    if (first_.order >= 0) return;
    int64_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += !std::isfinite(v[i]);
    if (bad > 0) first_ = {order, tensor, bad};
  }
  void check(const std::string& tensor, const std::vector<float>& v) { check(tensor, v.data(), v.size()); }
  const FirstBad& first() const { return first_; }

 private:
  int64_t next_ = 0;
  FirstBad first_;
};

// Same sequence of ops as Transformer::forward, checking each named activation as it is made.
// Every rank runs the whole replay, since MoE layers communicate.
FirstBad replay_forward(const Config& c, const NonfiniteStep& s, const ModelParams& p,
                        const DispatcherFactory& make_dispatcher, const SumReducer& reduce_sum,
                        comm::Communicator* tp, comm::Communicator* etp) {
  const Dims d = make_dims(c, s.local_rows, tp ? tp->size() : 1, etp ? etp->size() : 1);
  std::vector<int32_t> inputs(size_t(d.N)), targets(size_t(d.N));
  for (int64_t b = 0; b < d.B; ++b) {
    const int32_t* row = s.tokens + b * (d.T + 1);
    std::copy(row, row + d.T, inputs.begin() + b * d.T);
    std::copy(row + 1, row + d.T + 1, targets.begin() + b * d.T);
  }
  ActivationScan scan;
  std::vector<float> x(size_t(d.N * d.D)), xn(x.size()), rstd(size_t(d.N));
  ops::embedding_forward(x.data(), inputs.data(), p.tok_embeddings, d.N, d.D);
  scan.check("tok_embeddings output", x);
  for (int64_t i = 0; i < d.L; ++i) {
    const std::string layer = "layers." + std::to_string(i);
    const BlockParams& bp = p.blocks[size_t(i)];
    AttentionActs a;
    a.resize(d);
    attention_layer_forward(x.data(), a, bp, d, tp);
    scan.check(layer + ".attention_norm output", a.xn);
    scan.check(layer + ".attention q (after RoPE)", a.q);
    scan.check(layer + ".attention k (after RoPE)", a.k);
    scan.check(layer + ".attention v", a.v);
    scan.check(layer + ".attention scores (softmax)", a.att);
    scan.check(layer + ".attention output before wo", a.y);
    scan.check(layer + " residual stream after attention", x);
    ops::rmsnorm_forward(xn.data(), rstd.data(), x.data(), bp.ffn_norm, d.N, d.D, d.eps);
    scan.check(layer + ".ffn_norm output", xn);
    if (c.model.is_moe_layer(i)) {
      MoeLayerState m;
      m.resize(d);
      m.ctx.seed = c.train.seed;
      m.ctx.layer = i;
      m.ctx.step = s.step - 1;
      m.ctx.token_offset = s.token_offset;
      m.ctx.training = true;
      std::unique_ptr<TokenDispatcher> disp = make_dispatcher(i);
      moe_layer_forward(x.data(), m, xn.data(), bp, d, c.moe, *disp, reduce_sum, etp);
      scan.check(layer + ".moe.router logits", m.router.logits);
      scan.check(layer + ".moe.router scores", m.router.scores);
      scan.check(layer + ".moe.experts input (dispatched tokens)", m.expert_in);
      scan.check(layer + ".moe.experts w1 x", m.experts.a);
      scan.check(layer + ".moe.experts w3 x", m.experts.b);
      scan.check(layer + ".moe.experts silu(w1 x) * w3 x", m.experts.h);
      scan.check(layer + ".moe.experts output (w2 ...)", m.experts.out);
      scan.check(layer + " residual stream after moe", x);
    } else {
      SwigluActs f;
      f.resize(d.N, d.F);
      // This rank's hidden units; under tp g's all-reduce sums the partial outputs.
      std::vector<float> part(x.size(), 0.0f);
      swiglu_mlp_forward(part.data(), f, xn.data(), bp.w1, bp.w3, bp.w2, d.N, d.D, d.F);
      tp_allreduce(tp, part.data(), int64_t(part.size()));
      for (size_t j = 0; j < x.size(); ++j) x[j] += part[j];
      scan.check(layer + ".feed_forward w1 x", f.a);
      scan.check(layer + ".feed_forward w3 x", f.b);
      scan.check(layer + " residual stream after feed_forward", x);
    }
  }
  ops::rmsnorm_forward(xn.data(), rstd.data(), x.data(), p.norm, d.N, d.D, d.eps);
  scan.check("norm output", xn);
  std::vector<float> logits(size_t(d.N * d.V)), lse(size_t(d.N)), losses(size_t(d.N));
  ops::matmul_forward(logits.data(), xn.data(), p.output, d.N, d.D, d.V);
  scan.check("output logits", logits);
  ops::cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), d.N, d.V);
  scan.check("token cross-entropy", losses);
  return scan.first();
}

// Index (table order), slice position (ep and etp offsets) and count of the tensors of `buf` that
// hold a non-finite value.
std::string nonfinite_tensors(const ParamTable& table, const float* buf) {
  std::ostringstream out;
  const auto& ps = table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    int64_t bad = 0;
    for (int64_t j = 0; j < ps[i].numel; ++j) bad += !std::isfinite(buf[size_t(ps[i].offset + j)]);
    if (bad > 0) out << i << ' ' << ps[i].shard.offset << ' ' << ps[i].shard.etp_offset << ' ' << bad << ' ';
  }
  return out.str();
}

// Union over ranks of nonfinite_tensors: "name (count values), ...", or "none".
std::string gather_tensors(const ParamTable& table, const float* buf, comm::Communicator& world) {
  // Copies of one slice (replicas over dp, edp) count once; distinct slices of a split tensor add up.
  std::map<std::tuple<size_t, int64_t, int64_t>, int64_t> per_slice;
  for (const std::string& r : world.allgather_string(nonfinite_tensors(table, buf))) {
    std::istringstream in(r);
    size_t i;
    int64_t offset, etp_offset, n;
    while (in >> i >> offset >> etp_offset >> n) {
      int64_t& m = per_slice[{i, offset, etp_offset}];
      m = std::max(m, n);
    }
  }
  std::map<size_t, int64_t> bad;
  for (const auto& [key, n] : per_slice) bad[std::get<0>(key)] += n;
  if (bad.empty()) return "none";
  // The first few in table order (forward order); a NaN usually spreads to every gradient.
  std::string out;
  size_t listed = 0;
  for (const auto& [i, n] : bad) {
    if (listed++ == 4) return out + " and " + std::to_string(bad.size() - 4) + " more";
    out += (out.empty() ? "" : ", ") + table.params()[i].name + " (" + std::to_string(n) + " non-finite)";
  }
  return out;
}

}  // namespace

std::string describe_nonfinite(const Config& c, const NonfiniteStep& s, const ModelState& model,
                               const DispatcherFactory& make_dispatcher, const SumReducer& reduce_sum,
                               comm::Communicator& world, comm::Communicator* tp, comm::Communicator* etp) {
  const FirstBad local = replay_forward(c, s, model.p, make_dispatcher, reduce_sum, tp, etp);
  // Earliest position over ranks (max of the negated order); ranks holding it name it.
  double neg = local.order >= 0 ? -double(local.order) : -1e18;
  world.allreduce_max(&neg, 1);
  const bool mine = local.order >= 0 && -double(local.order) == neg;
  std::string where;
  for (const std::string& r : world.allgather_string(mine ? local.tensor + " (" + std::to_string(local.count) +
                                                                " non-finite on rank " + std::to_string(world.rank()) + ")"
                                                          : ""))
    if (where.empty() && !r.empty()) where = r;
  std::ostringstream msg;
  msg << "non-finite " << (std::isfinite(s.loss) ? "gradient norm" : "loss") << " at step " << s.step << " (loss "
      << s.loss << ", gradient norm " << s.grad_norm << "): ";
  if (!where.empty())
    msg << "first non-finite activation in forward order: " << where;
  else
    msg << "the forward pass is finite";
  msg << "; non-finite parameters: " << gather_tensors(model.table, model.params.data(), world)
      << "; non-finite gradients: " << gather_tensors(model.table, model.grads.data(), world)
      << ". The step was not applied and the last good checkpoint is kept; lower optim.lr, check the data "
         "(moe data inspect), or resume from that checkpoint";
  return msg.str();
}

}  // namespace moe
