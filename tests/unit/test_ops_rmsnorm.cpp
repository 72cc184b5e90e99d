// RMSNorm forward against a double reference; backward against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

TEST(OpsRmsnorm, ForwardMatchesDoubleReference) {
  const int64_t N = 4, D = 67;
  const float eps = 1e-5f;
  auto x = test::random_floats(N * D, 1, -3.0f, 3.0f), w = test::random_floats(D, 2, 0.5f, 1.5f);
  std::vector<float> out(N * D), rstd(N);
  ops::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, D, eps);
  for (int64_t i = 0; i < N; ++i) {
    double ss = 0.0;
    for (int64_t j = 0; j < D; ++j) ss += static_cast<double>(x[i * D + j]) * x[i * D + j];
    const double r = 1.0 / std::sqrt(ss / D + eps);
    EXPECT_NEAR(rstd[i], r, 1e-6 * r) << i;
    for (int64_t j = 0; j < D; ++j) EXPECT_NEAR(out[i * D + j], x[i * D + j] * r * w[j], 1e-5) << i << " " << j;
  }
}

TEST(OpsRmsnorm, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int64_t N = 3, D = 70;  // D > 64 crosses a column block of the weight gradient
  const float eps = 1e-5f;
  auto x = test::random_floats(N * D, 3), w = test::random_floats(D, 4, 0.5f, 1.5f);
  auto g = test::random_floats(N * D, 5);
  std::vector<float> out(N * D), rstd(N), dx(N * D, 0.0f), dw(D, 0.0f);
  auto loss = [&] {
    ops::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, D, eps);
    return test::weighted_sum(out.data(), g.data(), N * D);
  };
  loss();
  ops::rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, D);
  auto rx = test::grad_check(loss, x.data(), dx.data(), N * D);
  EXPECT_LT(rx.max_rel_error, 1e-2) << test::describe(rx);
  auto rw = test::grad_check(loss, w.data(), dw.data(), D);
  EXPECT_LT(rw.max_rel_error, 1e-2) << test::describe(rw);

  auto dx2 = dx, dw2 = dw;
  ops::rmsnorm_backward(dx2.data(), dw2.data(), g.data(), x.data(), w.data(), rstd.data(), N, D);
  ops::rmsnorm_backward(nullptr, nullptr, g.data(), x.data(), w.data(), rstd.data(), N, D);
  for (int64_t i = 0; i < N * D; ++i) EXPECT_NEAR(dx2[i], 2.0f * dx[i], 1e-5) << i;
  for (int64_t j = 0; j < D; ++j) EXPECT_NEAR(dw2[j], 2.0f * dw[j], 1e-5) << j;
}

}  // namespace
}  // namespace moe
