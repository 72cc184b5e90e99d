// matmul and grouped_matmul: forward against naive loops, backward against finite differences.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

using test::random_floats;

// out[n,o] = sum_i inp[n,i] w[o,i], in double.
std::vector<double> naive_matmul(const float* inp, const float* w, int64_t N, int64_t I, int64_t O) {
  std::vector<double> out(N * O, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < I; ++i) out[n * O + o] += static_cast<double>(inp[n * I + i]) * w[o * I + i];
  return out;
}

TEST(OpsMatmul, ForwardMatchesNaiveLoops) {
  const int64_t N = 5, I = 7, O = 3;
  auto x = random_floats(N * I, 1), w = random_floats(O * I, 2);
  std::vector<float> out(N * O, 123.0f);  // overwritten when accumulate = false
  ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O);
  const auto ref = naive_matmul(x.data(), w.data(), N, I, O);
  EXPECT_LT(test::max_abs_diff(out.data(), ref.data(), N * O), 1e-5);

  ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O, /*accumulate=*/true);
  for (int64_t i = 0; i < N * O; ++i) EXPECT_NEAR(out[i], 2.0 * ref[i], 1e-5) << i;
}

TEST(OpsMatmul, BackwardMatchesFiniteDifferences) {
  const int64_t N = 4, I = 6, O = 5;
  auto x = random_floats(N * I, 3), w = random_floats(O * I, 4), g = random_floats(N * O, 5);
  std::vector<float> out(N * O), dx(N * I, 0.0f), dw(O * I, 0.0f);
  auto loss = [&] {
    ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O);
    return test::weighted_sum(out.data(), g.data(), N * O);
  };
  ops::matmul_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), N, I, O);
  auto rx = test::grad_check(loss, x.data(), dx.data(), N * I);
  EXPECT_LT(rx.max_rel_error, 1e-2) << test::describe(rx);
  auto rw = test::grad_check(loss, w.data(), dw.data(), O * I);
  EXPECT_LT(rw.max_rel_error, 1e-2) << test::describe(rw);
}

// Each gradient gets two adds: one together with the other, one with the other pointer null.
TEST(OpsMatmul, BackwardAccumulatesAndSkipsNull) {
  const int64_t N = 3, I = 4, O = 2;
  auto x = random_floats(N * I, 6), w = random_floats(O * I, 7), g = random_floats(N * O, 8);
  std::vector<float> dx1(N * I, 0.0f), dw1(O * I, 0.0f), dx2(N * I, 0.0f), dw2(O * I, 0.0f);
  ops::matmul_backward(dx1.data(), dw1.data(), g.data(), x.data(), w.data(), N, I, O);
  ops::matmul_backward(dx2.data(), dw2.data(), g.data(), x.data(), w.data(), N, I, O);
  ops::matmul_backward(dx2.data(), nullptr, g.data(), x.data(), w.data(), N, I, O);
  ops::matmul_backward(nullptr, dw2.data(), g.data(), x.data(), w.data(), N, I, O);
  for (int64_t i = 0; i < N * I; ++i) EXPECT_NEAR(dx2[i], 2.0f * dx1[i], 1e-5) << i;
  for (int64_t i = 0; i < O * I; ++i) EXPECT_NEAR(dw2[i], 2.0f * dw1[i], 1e-5) << i;
}

// Expert 1 gets no rows: it must be skipped, and its weight gradient left untouched.
TEST(OpsGroupedMatmul, ForwardWithEmptyExpertEqualsPerExpertMatmul) {
  const int64_t E = 3, I = 5, O = 4;
  const std::vector<int64_t> offsets = {0, 3, 3, 7};
  const int64_t M = offsets[E];
  auto x = random_floats(M * I, 9), w = random_floats(E * O * I, 10);
  std::vector<float> out(M * O, 0.0f);
  ops::grouped_matmul_forward(out.data(), x.data(), w.data(), offsets.data(), E, I, O);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t rows = offsets[e + 1] - offsets[e];
    std::vector<float> ref(rows * O);
    ops::matmul_forward(ref.data(), x.data() + offsets[e] * I, w.data() + e * O * I, rows, I, O);
    for (int64_t i = 0; i < rows * O; ++i) EXPECT_EQ(out[offsets[e] * O + i], ref[i]) << e << " " << i;
  }
}

TEST(OpsGroupedMatmul, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int64_t E = 3, I = 4, O = 3;
  const std::vector<int64_t> offsets = {0, 2, 2, 5};
  const int64_t M = offsets[E];
  auto x = random_floats(M * I, 11), w = random_floats(E * O * I, 12), g = random_floats(M * O, 13);
  std::vector<float> out(M * O), dx(M * I, 0.0f), dw(E * O * I, 0.0f);
  auto loss = [&] {
    ops::grouped_matmul_forward(out.data(), x.data(), w.data(), offsets.data(), E, I, O);
    return test::weighted_sum(out.data(), g.data(), M * O);
  };
  ops::grouped_matmul_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), offsets.data(), E, I, O);
  for (int64_t i = O * I; i < 2 * O * I; ++i) EXPECT_EQ(dw[i], 0.0f) << "empty expert 1 got a gradient";
  auto rx = test::grad_check(loss, x.data(), dx.data(), M * I);
  EXPECT_LT(rx.max_rel_error, 1e-2) << test::describe(rx);
  auto rw = test::grad_check(loss, w.data(), dw.data(), E * O * I);
  EXPECT_LT(rw.max_rel_error, 1e-2) << test::describe(rw);

  std::vector<float> dx2 = dx, dw2 = dw;
  ops::grouped_matmul_backward(dx2.data(), dw2.data(), g.data(), x.data(), w.data(), offsets.data(), E, I, O);
  for (int64_t i = 0; i < M * I; ++i) EXPECT_NEAR(dx2[i], 2.0f * dx[i], 1e-5) << i;
  for (int64_t i = 0; i < E * O * I; ++i) EXPECT_NEAR(dw2[i], 2.0f * dw[i], 1e-5) << i;
}

}  // namespace
}  // namespace moe
