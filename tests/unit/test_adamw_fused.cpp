// The fused AdamW (ops::adamw_update_fused: clip scaling, update and the compute copy in one pass)
// against the sequence it replaces: scale a copy of the gradient, adamw_update, round the
// parameters into the copy. Bit for bit, on the parallel chunked path and a short tail; and the
// optimizer's use of it keeps ComputeWeights equal to a fresh rounding of the master weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/half.h"
#include "kernels/ops.h"
#include "src/train/optimizer.h"
#include "src/train/precision_weights.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/model_fixtures.h"

namespace moe {
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The update as it ran before the fused kernel (a scalar loop: this file keeps errno on sqrt).
void adamw_scalar(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int64_t step) {
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    const float mhat = m[i] / bc1, vhat = v[i] / bc2;
    param[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + weight_decay * param[i]);
  }
}

TEST(AdamwFused, VectorisedUpdateKeepsTheScalarBits) {
  const int64_t n = 70001;
  auto p = test::random_floats(n, 3), p_ref = p;
  std::vector<float> m(size_t(n), 0.0f), v = m, m_ref = m, v_ref = m;
  for (int64_t step = 1; step <= 3; ++step) {
    const auto g = test::random_floats(n, 30 + uint64_t(step), -3.0f, 3.0f);
    adamw_scalar(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), n, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
    ops::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
    ASSERT_TRUE(same_bits(p, p_ref)) << step;
    ASSERT_TRUE(same_bits(m, m_ref)) << step;
    ASSERT_TRUE(same_bits(v, v_ref)) << step;
  }
}

void check_fused(int64_t n, float clip, Precision prec) {
  const float lr = 3e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
  auto p_ref = test::random_floats(n, 1), p = p_ref;
  std::vector<float> m_ref(size_t(n), 0.0f), v_ref = m_ref, m = m_ref, v = m_ref, copy(size_t(n), 7.0f);
  for (int64_t step = 1; step <= 3; ++step) {
    const auto g = test::random_floats(n, 10 + uint64_t(step), -3.0f, 3.0f);
    auto scaled = g;
    if (clip != 1.0f) ops::scale_inplace(scaled.data(), clip, n);
    ops::adamw_update(p_ref.data(), scaled.data(), m_ref.data(), v_ref.data(), n, lr, b1, b2, eps, wd, step);
    ops::adamw_update_fused(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd, step, clip, copy.data(),
                            prec);
    ASSERT_TRUE(same_bits(p, p_ref)) << "param, step " << step;
    ASSERT_TRUE(same_bits(m, m_ref)) << "m, step " << step;
    ASSERT_TRUE(same_bits(v, v_ref)) << "v, step " << step;
    std::vector<float> want(static_cast<size_t>(n));
    half::round_to(want.data(), p_ref.data(), n, prec);
    ASSERT_TRUE(same_bits(copy, want)) << "compute copy, step " << step;
  }
  auto g = test::random_floats(n, 20);  // no copy: parameters only
  auto p2 = p;
  ops::adamw_update(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), n, lr, b1, b2, eps, 0.0f, 4);
  ops::adamw_update_fused(p2.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, 0.0f, 4, 1.0f, nullptr,
                          Precision::fp32);
  EXPECT_TRUE(same_bits(p2, p_ref));
}

TEST(AdamwFused, BitsOfScaleThenUpdateThenRound) {
  check_fused(70001, 0.37f, Precision::bf16);  // parallel chunks and a partial last chunk
  check_fused(70001, 1.0f, Precision::fp16);
  check_fused(13, 0.5f, Precision::bf16);  // one short chunk, serial
}

// AdamW::step writing the compute copy of the updated tensors, then refresh() (which skips them):
// the same copy as rounding the updated master weights from scratch; invalidate() re-rounds.
TEST(AdamwFused, OptimizerKeepsTheComputeCopyFresh) {
  Config c = test::tiny_model_config(2);
  c.train.precision = "bf16";
  ModelState m(c);
  test::randomize(m, 3);
  std::vector<bool> frozen(m.table.params().size(), false);
  frozen[0] = true;  // a tensor the optimizer does not update: refresh() still rounds it
  AdamW opt(m.table, c.optim, frozen);
  ComputeWeights fused(c, m.table), plain(c, m.table);
  fused.refresh(m);
  const auto grads = test::random_floats(int64_t(m.params.size()), 5);
  for (int step = 0; step < 2; ++step) {
    opt.step(m.params.data(), grads.data(), 1e-2, 0.5, &fused);
    if (step == 1) m.params[size_t(m.table.params()[0].offset)] += 1.0f;  // the frozen tensor changes
    const ModelParams& a = fused.refresh(m);
    const ModelParams& b = plain.refresh(m);
    const float *fa = a.tok_embeddings - m.table.params()[0].offset, *fb = b.tok_embeddings - m.table.params()[0].offset;
    ASSERT_EQ(std::memcmp(fa, fb, m.params.size() * sizeof(float)), 0) << "step " << step;
  }
  // A master weight changed behind the optimizer's back is seen only after invalidate().
  size_t i = 1;
  while (!ComputeWeights::rounds(m.table.params()[i].name)) ++i;
  const ParamInfo& t = m.table.params()[i];
  opt.step(m.params.data(), grads.data(), 1e-2, 1.0, &fused);
  m.params[size_t(t.offset)] = 3.0f;
  fused.invalidate();
  const float* copy = fused.refresh(m).tok_embeddings - m.table.params()[0].offset;
  EXPECT_EQ(copy[t.offset], 3.0f);
}

}  // namespace
}  // namespace moe
