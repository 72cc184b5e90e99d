#include "moe/experts.h"

#include <algorithm>

#include "kernels/ops.h"

namespace moe {

void experts_forward(ExpertActs& acts, const float* x, const float* w1, const float* w3, const float* w2,
                     const int64_t* offsets, int64_t E, int64_t D, int64_t Fe) {
  const int64_t M = offsets[E];
  acts.a.resize(size_t(M * Fe));
  acts.b.resize(size_t(M * Fe));
  acts.h.resize(size_t(M * Fe));
  acts.out.resize(size_t(M * D));
  ops::grouped_matmul_forward(acts.a.data(), x, w1, offsets, E, D, Fe);
  ops::grouped_matmul_forward(acts.b.data(), x, w3, offsets, E, D, Fe);
  ops::swiglu_forward(acts.h.data(), acts.a.data(), acts.b.data(), M * Fe);
  ops::grouped_matmul_forward(acts.out.data(), acts.h.data(), w2, offsets, E, Fe, D);
}

void experts_backward(float* dx, float* gw1, float* gw3, float* gw2, const float* dout, const ExpertActs& acts,
                      ExpertScratch& s, const float* x, const float* w1, const float* w3, const float* w2,
                      const int64_t* offsets, int64_t E, int64_t D, int64_t Fe) {
  const size_t n = size_t(offsets[E] * Fe);
  s.da.assign(n, 0.0f);
  s.db.assign(n, 0.0f);
  s.dh.assign(n, 0.0f);
  ops::grouped_matmul_backward(s.dh.data(), gw2, dout, acts.h.data(), w2, offsets, E, Fe, D);
  ops::swiglu_backward(s.da.data(), s.db.data(), s.dh.data(), acts.a.data(), acts.b.data(), int64_t(n));
  ops::grouped_matmul_backward(dx, gw1, s.da.data(), x, w1, offsets, E, D, Fe);
  ops::grouped_matmul_backward(dx, gw3, s.db.data(), x, w3, offsets, E, D, Fe);
}

}  // namespace moe
