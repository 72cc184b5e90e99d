#include "src/model/mlp.h"

#include <algorithm>

#include "kernels/ops.h"

namespace moe {

void SwigluActs::resize(int64_t N, int64_t F) {
  a.resize(size_t(N * F));
  b.resize(size_t(N * F));
  h.resize(size_t(N * F));
}

void SwigluScratch::resize(int64_t N, int64_t F) {
  da.resize(size_t(N * F));
  db.resize(size_t(N * F));
  dh.resize(size_t(N * F));
}

void swiglu_hidden_forward(SwigluActs& acts, const float* xn, const float* w1, const float* w3, int64_t N, int64_t D,
                           int64_t F) {
  ops::matmul_forward(acts.a.data(), xn, w1, N, D, F);
  ops::matmul_forward(acts.b.data(), xn, w3, N, D, F);
  ops::swiglu_forward(acts.h.data(), acts.a.data(), acts.b.data(), N * F);
}

void swiglu_mlp_forward(float* out, SwigluActs& acts, const float* xn, const float* w1, const float* w3,
                        const float* w2, int64_t N, int64_t D, int64_t F) {
  swiglu_hidden_forward(acts, xn, w1, w3, N, D, F);
  ops::matmul_forward(out, acts.h.data(), w2, N, F, D, /*accumulate=*/true);
}

void swiglu_mlp_backward(float* dxn, float* gw1, float* gw3, float* gw2, const float* dout, const SwigluActs& acts,
                         SwigluScratch& s, const float* xn, const float* w1, const float* w3, const float* w2,
                         int64_t N, int64_t D, int64_t F) {
  const size_t n = size_t(N * F);
  std::fill_n(s.dh.begin(), n, 0.0f);
  std::fill_n(s.da.begin(), n, 0.0f);
  std::fill_n(s.db.begin(), n, 0.0f);
  ops::matmul_backward(s.dh.data(), gw2, dout, acts.h.data(), w2, N, F, D);
  ops::swiglu_backward(s.da.data(), s.db.data(), s.dh.data(), acts.a.data(), acts.b.data(), N * F);
  ops::matmul_backward(dxn, gw1, s.da.data(), xn, w1, N, D, F);
  ops::matmul_backward(dxn, gw3, s.db.data(), xn, w3, N, D, F);
}

}  // namespace moe
