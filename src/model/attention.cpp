#include "src/model/attention.h"

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"
#include "src/parallel/tensor_parallel.h"

namespace moe {

void AttentionActs::resize(const Dims& d) {
  x_in.resize(size_t(d.N * d.D));
  xn.resize(size_t(d.N * d.D));
  rstd.resize(size_t(d.N));
  q.resize(size_t(d.N * d.H * d.hd));
  k.resize(size_t(d.N * d.KV * d.hd));
  v.resize(size_t(d.N * d.KV * d.hd));
  att.resize(size_t(d.B * d.H * d.T * d.T));
  y.resize(size_t(d.N * d.H * d.hd));
}

void AttentionScratch::resize(const Dims& d) {
  dxn.resize(size_t(d.N * d.D));
  dq.resize(size_t(d.N * d.H * d.hd));
  dk.resize(size_t(d.N * d.KV * d.hd));
  dv.resize(size_t(d.N * d.KV * d.hd));
  dy.resize(size_t(d.N * d.H * d.hd));
}

void attention_core_forward(AttentionActs& a, const float* x, const BlockParams& p, const Dims& d) {
  const int64_t qd = d.H * d.hd, kvd = d.KV * d.hd;
  std::memcpy(a.x_in.data(), x, sizeof(float) * size_t(d.N * d.D));
  ops::rmsnorm_forward(a.xn.data(), a.rstd.data(), x, p.attention_norm, d.N, d.D, d.eps);
  column_linear_forward(a.q.data(), a.xn.data(), p.wq, d.N, d.D, qd);
  column_linear_forward(a.k.data(), a.xn.data(), p.wk, d.N, d.D, kvd);
  column_linear_forward(a.v.data(), a.xn.data(), p.wv, d.N, d.D, kvd);
  ops::rope_forward(a.q.data(), a.q.data(), d.B, d.T, d.H, d.hd, d.theta);
  ops::rope_forward(a.k.data(), a.k.data(), d.B, d.T, d.KV, d.hd, d.theta);
  ops::attention_forward(a.y.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(), d.B, d.T, d.H, d.KV, d.hd);
}

void attention_layer_forward(float* x, AttentionActs& a, const BlockParams& p, const Dims& d,
                             comm::Communicator* tp) {
  attention_core_forward(a, x, p, d);
  row_linear_forward(x, a.wo_partial, a.y.data(), p.wo, d.N, d.H * d.hd, d.D, tp);  // residual add
}

void attention_layer_backward(float* dx, const AttentionActs& a, const BlockParams& p, const BlockParams& g,
                              AttentionScratch& s, const Dims& d, comm::Communicator* tp) {
  const int64_t qd = d.H * d.hd, kvd = d.KV * d.hd;
  auto zero = [](std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); };
  zero(s.dy);
  zero(s.dq);
  zero(s.dk);
  zero(s.dv);
  zero(s.dxn);
  row_linear_backward(s.dy.data(), g.wo, dx, a.y.data(), p.wo, d.N, qd, d.D);
  ops::attention_backward(s.dq.data(), s.dk.data(), s.dv.data(), s.dy.data(), a.att.data(), a.q.data(), a.k.data(),
                          a.v.data(), d.B, d.T, d.H, d.KV, d.hd);
  // RoPE is a rotation: its backward is the inverse rotation, done in place through dy as scratch.
  std::fill(s.dy.begin(), s.dy.end(), 0.0f);
  ops::rope_backward(s.dy.data(), s.dq.data(), d.B, d.T, d.H, d.hd, d.theta);
  std::swap(s.dq, s.dy);
  std::fill(s.dy.begin(), s.dy.begin() + d.N * kvd, 0.0f);
  ops::rope_backward(s.dy.data(), s.dk.data(), d.B, d.T, d.KV, d.hd, d.theta);
  std::copy(s.dy.begin(), s.dy.begin() + d.N * kvd, s.dk.begin());
  column_linear_backward(s.dxn.data(), g.wq, s.dq.data(), a.xn.data(), p.wq, d.N, d.D, qd);
  column_linear_backward(s.dxn.data(), g.wk, s.dk.data(), a.xn.data(), p.wk, d.N, d.D, kvd);
  column_linear_backward(s.dxn.data(), g.wv, s.dv.data(), a.xn.data(), p.wv, d.N, d.D, kvd);
  // f's backward: each rank's heads give a partial dxn; the norm below needs the full one, and
  // with it the norm's weight gradient is the same on every tp rank.
  tp_allreduce(tp, s.dxn.data(), d.N * d.D);
  // dx already holds the residual path's gradient; the norm's backward adds the branch's.
  ops::rmsnorm_backward(dx, g.attention_norm, s.dxn.data(), a.x_in.data(), p.attention_norm, a.rstd.data(), d.N,
                        d.D);
}

}  // namespace moe
