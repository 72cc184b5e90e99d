// AdamW against its formula in double, and the double-accumulated sum of squares.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

TEST(OpsAdamw, StepsMatchFormula) {
  const int64_t n = 33;
  const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
  auto p = test::random_floats(n, 1);
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  std::vector<double> pr(p.begin(), p.end()), mr(n, 0.0), vr(n, 0.0);
  for (int64_t step = 1; step <= 3; ++step) {
    const auto g = test::random_floats(n, 10 + step);
    ops::adamw_update(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd, step);
    for (int64_t i = 0; i < n; ++i) {
      mr[i] = b1 * mr[i] + (1.0 - b1) * g[i];
      vr[i] = b2 * vr[i] + (1.0 - b2) * g[i] * g[i];
      const double mhat = mr[i] / (1.0 - std::pow(b1, step)), vhat = vr[i] / (1.0 - std::pow(b2, step));
      pr[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + wd * pr[i]);
    }
    EXPECT_LT(test::max_abs_diff(m.data(), mr.data(), n), 1e-6) << step;
    EXPECT_LT(test::max_abs_diff(v.data(), vr.data(), n), 1e-6) << step;
    EXPECT_LT(test::max_abs_diff(p.data(), pr.data(), n), 1e-5) << step;
  }
}

// With a zero gradient only the decoupled decay moves the parameter.
TEST(OpsAdamw, ZeroGradientOnlyDecays) {
  std::vector<float> p = {2.0f, -4.0f}, g = {0.0f, 0.0f}, m = {0.0f, 0.0f}, v = {0.0f, 0.0f};
  ops::adamw_update(p.data(), g.data(), m.data(), v.data(), 2, 0.5f, 0.9f, 0.999f, 1e-8f, 0.1f, 1);
  EXPECT_FLOAT_EQ(p[0], 2.0f * (1.0f - 0.05f));
  EXPECT_FLOAT_EQ(p[1], -4.0f * (1.0f - 0.05f));
}

TEST(OpsSumSquares, MatchesDoubleSumAcrossBlocks) {
  const int64_t n = (1 << 14) * 2 + 123;  // three blocks, the last partial
  auto x = test::random_floats(n, 2, -3.0f, 3.0f);
  double ref = 0.0;
  for (float v : x) ref += static_cast<double>(v) * v;
  EXPECT_NEAR(ops::sum_squares(x.data(), n), ref, 1e-12 * ref);
  EXPECT_EQ(ops::sum_squares(x.data(), 0), 0.0);
  // Squares that vanish next to a large one in float (ulp 2 at 2^24) survive in double.
  std::vector<float> y = {4096.0f, 1e-3f, 1e-3f};
  EXPECT_NEAR(ops::sum_squares(y.data(), 3) - 4096.0 * 4096.0, 2e-6, 1e-8);
}

}  // namespace
}  // namespace moe
