// Softmax and cross-entropy: forward against log-softmax in double, backward by finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

// log softmax of one row in double.
std::vector<double> log_softmax(const float* x, int64_t n) {
  double mx = x[0], sum = 0.0;
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, static_cast<double>(x[j]));
  for (int64_t j = 0; j < n; ++j) sum += std::exp(x[j] - mx);
  std::vector<double> out(n);
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] - mx - std::log(sum);
  return out;
}

TEST(OpsSoftmax, ForwardMatchesReferenceForLargeLogits) {
  const int64_t N = 3, C = 9;
  auto x = test::random_floats(N * C, 1, -5.0f, 5.0f);
  for (int64_t j = 0; j < C; ++j) x[2 * C + j] += 1000.0f;  // naive exp would overflow
  std::vector<float> p(N * C);
  ops::softmax_forward(p.data(), x.data(), N, C);
  for (int64_t i = 0; i < N; ++i) {
    const auto ref = log_softmax(x.data() + i * C, C);
    for (int64_t j = 0; j < C; ++j) EXPECT_NEAR(p[i * C + j], std::exp(ref[j]), 1e-5) << i << " " << j;
  }
}

TEST(OpsSoftmax, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int64_t N = 3, C = 7;
  auto x = test::random_floats(N * C, 2, -2.0f, 2.0f), g = test::random_floats(N * C, 3);
  std::vector<float> p(N * C), dx(N * C, 0.0f);
  auto loss = [&] {
    ops::softmax_forward(p.data(), x.data(), N, C);
    return test::weighted_sum(p.data(), g.data(), N * C);
  };
  loss();
  ops::softmax_backward(dx.data(), g.data(), p.data(), N, C);
  auto r = test::grad_check(loss, x.data(), dx.data(), N * C);
  EXPECT_LT(r.max_rel_error, 1e-2) << test::describe(r);

  auto dx2 = dx;
  ops::softmax_backward(dx2.data(), g.data(), p.data(), N, C);
  for (int64_t i = 0; i < N * C; ++i) EXPECT_NEAR(dx2[i], 2.0f * dx[i], 1e-6) << i;
}

TEST(OpsCrossEntropy, ForwardMatchesLogSoftmax) {
  const int64_t N = 4, V = 11;
  auto x = test::random_floats(N * V, 4, -4.0f, 4.0f);
  for (int64_t j = 0; j < V; ++j) x[3 * V + j] -= 500.0f;  // far from zero: needs max subtraction
  const std::vector<int32_t> targets = {0, 10, 5, 3};
  std::vector<float> losses(N), lse(N);
  ops::cross_entropy_forward(losses.data(), lse.data(), x.data(), targets.data(), N, V);
  for (int64_t i = 0; i < N; ++i) {
    const auto ref = log_softmax(x.data() + i * V, V);
    EXPECT_NEAR(losses[i], -ref[targets[i]], 1e-5) << i;
    EXPECT_NEAR(lse[i], x[i * V] - ref[0], 1e-4 * std::fabs(lse[i]) + 1e-5) << i;
  }
  std::vector<float> no_lse(N);
  ops::cross_entropy_forward(no_lse.data(), nullptr, x.data(), targets.data(), N, V);
  EXPECT_EQ(no_lse, losses);
}

TEST(OpsCrossEntropy, BackwardMatchesFiniteDifferencesWithAndWithoutLse) {
  const int64_t N = 4, V = 9;
  auto x = test::random_floats(N * V, 5, -3.0f, 3.0f), dl = test::random_floats(N, 6);
  auto targets = test::random_ints(N, 7, 0, V);
  std::vector<float> losses(N), lse(N), dx(N * V, 0.0f);
  auto loss = [&] {
    ops::cross_entropy_forward(losses.data(), lse.data(), x.data(), targets.data(), N, V);
    return test::weighted_sum(losses.data(), dl.data(), N);
  };
  loss();
  ops::cross_entropy_backward(dx.data(), dl.data(), x.data(), lse.data(), targets.data(), N, V);
  auto r = test::grad_check(loss, x.data(), dx.data(), N * V);
  EXPECT_LT(r.max_rel_error, 1e-2) << test::describe(r);

  auto dx2 = dx;
  ops::cross_entropy_backward(dx2.data(), dl.data(), x.data(), nullptr, targets.data(), N, V);
  for (int64_t i = 0; i < N * V; ++i) EXPECT_NEAR(dx2[i], 2.0f * dx[i], 1e-6) << i;
}

}  // namespace
}  // namespace moe
