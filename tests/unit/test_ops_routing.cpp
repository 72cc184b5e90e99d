// top-k, gather and scatter-add: tie rules, inverse permutations, and the combine gradient.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

TEST(OpsTopk, DescendingWithTiesToLowerIndex) {
  const int64_t N = 3, C = 6, k = 3;
  const std::vector<float> scores = {
      0.1f, 0.5f, 0.2f, 0.5f, 0.0f, 0.3f,   // tie between 1 and 3
      0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f,   // all equal: 0, 1, 2
      -1.f, -3.f, 4.0f, 2.0f, 4.0f, -0.5f,  // tie at the top, then 3
  };
  std::vector<int32_t> idx(N * k);
  std::vector<float> vals(N * k);
  ops::topk_forward(idx.data(), vals.data(), scores.data(), N, C, k);
  EXPECT_EQ(idx, (std::vector<int32_t>{1, 3, 5, 0, 1, 2, 2, 4, 3}));
  EXPECT_EQ(vals, (std::vector<float>{0.5f, 0.5f, 0.3f, 0.2f, 0.2f, 0.2f, 4.0f, 4.0f, 2.0f}));
}

TEST(OpsTopk, MatchesStableSortOnRandomScores) {
  const int64_t N = 20, C = 8, k = 2;
  auto scores = test::random_floats(N * C, 1);
  for (int64_t i = 0; i < N; i += 3) scores[i * C + 5] = scores[i * C + 2];  // some ties
  std::vector<int32_t> idx(N * k);
  std::vector<float> vals(N * k);
  ops::topk_forward(idx.data(), vals.data(), scores.data(), N, C, k);
  for (int64_t i = 0; i < N; ++i) {
    std::vector<int32_t> order(C);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return scores[i * C + a] > scores[i * C + b]; });
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(idx[i * k + j], order[j]) << i << " " << j;
      EXPECT_EQ(vals[i * k + j], scores[i * C + order[j]]) << i << " " << j;
    }
  }
}

TEST(OpsGatherScatter, ScatterUndoesGather) {
  const int64_t M = 6, D = 70;
  const std::vector<int32_t> perm = {4, 0, 5, 2, 1, 3};
  auto x = test::random_floats(M * D, 2);
  std::vector<float> permuted(M * D), back(M * D, 0.0f);
  ops::gather_rows(permuted.data(), x.data(), perm.data(), M, D);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < D; ++j) EXPECT_EQ(permuted[i * D + j], x[perm[i] * D + j]);
  ops::scatter_add_rows(back.data(), permuted.data(), perm.data(), nullptr, M, D);
  EXPECT_EQ(back, x);
}

// Each token goes to two slots (k = 2): the combine sums them with their weights.
TEST(OpsGatherScatter, WeightedScatterMatchesReference) {
  const int64_t N = 3, M = 6, D = 5;
  const std::vector<int32_t> rows = {2, 0, 1, 2, 0, 1};
  auto x = test::random_floats(M * D, 3), w = test::random_floats(M, 4, 0.0f, 1.0f);
  auto out = test::random_floats(N * D, 5);
  auto ref = std::vector<double>(out.begin(), out.end());
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < D; ++j) ref[rows[i] * D + j] += static_cast<double>(w[i]) * x[i * D + j];
  ops::scatter_add_rows(out.data(), x.data(), rows.data(), w.data(), M, D);
  EXPECT_LT(test::max_abs_diff(out.data(), ref.data(), N * D), 1e-6);
}

TEST(OpsGatherScatter, ScatterBackwardMatchesFiniteDifferencesAndAccumulates) {
  const int64_t N = 3, M = 6, D = 4;
  const std::vector<int32_t> rows = {1, 2, 0, 1, 0, 2};
  auto x = test::random_floats(M * D, 6), w = test::random_floats(M, 7, 0.0f, 1.0f);
  auto g = test::random_floats(N * D, 8);
  std::vector<float> out(N * D), dx(M * D, 0.0f), dw(M, 0.0f);
  auto loss = [&] {
    std::fill(out.begin(), out.end(), 0.0f);
    ops::scatter_add_rows(out.data(), x.data(), rows.data(), w.data(), M, D);
    return test::weighted_sum(out.data(), g.data(), N * D);
  };
  ops::scatter_add_rows_backward(dx.data(), dw.data(), g.data(), x.data(), rows.data(), w.data(), M, D);
  auto rx = test::grad_check(loss, x.data(), dx.data(), M * D);
  EXPECT_LT(rx.max_rel_error, 1e-2) << test::describe(rx);
  auto rw = test::grad_check(loss, w.data(), dw.data(), M);
  EXPECT_LT(rw.max_rel_error, 1e-2) << test::describe(rw);

  auto dx2 = dx, dw2 = dw;
  ops::scatter_add_rows_backward(dx2.data(), nullptr, g.data(), x.data(), rows.data(), w.data(), M, D);
  ops::scatter_add_rows_backward(nullptr, dw2.data(), g.data(), x.data(), rows.data(), w.data(), M, D);
  for (int64_t i = 0; i < M * D; ++i) EXPECT_NEAR(dx2[i], 2.0f * dx[i], 1e-6) << i;
  for (int64_t i = 0; i < M; ++i) EXPECT_NEAR(dw2[i], 2.0f * dw[i], 1e-6) << i;
}

// gather_rows has no backward of its own: its gradient is scatter_add_rows without weights.
TEST(OpsGatherScatter, GatherGradientIsUnweightedScatter) {
  const int64_t N = 4, M = 6, D = 3;
  const std::vector<int32_t> rows = {3, 0, 3, 1, 2, 0};
  auto x = test::random_floats(N * D, 9), g = test::random_floats(M * D, 10);
  std::vector<float> out(M * D), dx(N * D, 0.0f);
  auto loss = [&] {
    ops::gather_rows(out.data(), x.data(), rows.data(), M, D);
    return test::weighted_sum(out.data(), g.data(), M * D);
  };
  ops::scatter_add_rows(dx.data(), g.data(), rows.data(), nullptr, M, D);
  auto r = test::grad_check(loss, x.data(), dx.data(), N * D);
  EXPECT_LT(r.max_rel_error, 1e-2) << test::describe(r);
}

// Padding rows (index < 0, padded expert layouts): each op equals the same op on the real rows
// alone, gather writes zeros, and the backward leaves the padding entries as they were.
TEST(OpsGatherScatter, NegativeRowsArePadding) {
  const int64_t N = 4, M = 7, D = 5;
  const std::vector<int32_t> rows = {2, -1, 0, 3, -1, 0, 1};
  std::vector<int32_t> real_rows;
  std::vector<int64_t> real;  // positions of the real rows
  for (int64_t i = 0; i < M; ++i)
    if (rows[i] >= 0) real_rows.push_back(rows[i]), real.push_back(i);
  const int64_t R = static_cast<int64_t>(real.size());
  auto x = test::random_floats(N * D, 11), y = test::random_floats(M * D, 12), w = test::random_floats(M, 13);
  auto g = test::random_floats(N * D, 14), dy0 = test::random_floats(M * D, 15), dw0 = test::random_floats(M, 16);
  std::vector<float> ry(R * D), rw(R), rdy(R * D), rdw(R);
  for (int64_t r = 0; r < R; ++r) {
    rw[r] = w[real[r]];
    rdw[r] = dw0[real[r]];
    for (int64_t j = 0; j < D; ++j) ry[r * D + j] = y[real[r] * D + j], rdy[r * D + j] = dy0[real[r] * D + j];
  }

  std::vector<float> gathered(M * D, 7.0f), rgathered(R * D);
  ops::gather_rows(gathered.data(), x.data(), rows.data(), M, D);
  ops::gather_rows(rgathered.data(), x.data(), real_rows.data(), R, D);
  auto out = test::random_floats(N * D, 17), rout = out;
  ops::scatter_add_rows(out.data(), y.data(), rows.data(), w.data(), M, D);
  ops::scatter_add_rows(rout.data(), ry.data(), real_rows.data(), rw.data(), R, D);
  EXPECT_EQ(out, rout);
  auto dy = dy0, dw = dw0;
  ops::scatter_add_rows_backward(dy.data(), dw.data(), g.data(), y.data(), rows.data(), w.data(), M, D);
  ops::scatter_add_rows_backward(rdy.data(), rdw.data(), g.data(), ry.data(), real_rows.data(), rw.data(), R, D);

  int64_t r = 0;
  for (int64_t i = 0; i < M; ++i) {
    const bool pad = rows[i] < 0;
    EXPECT_EQ(dw[i], pad ? dw0[i] : rdw[r]) << i;
    for (int64_t j = 0; j < D; ++j) {
      EXPECT_EQ(gathered[i * D + j], pad ? 0.0f : rgathered[r * D + j]) << i;
      EXPECT_EQ(dy[i * D + j], pad ? dy0[i * D + j] : rdy[r * D + j]) << i;
    }
    r += pad ? 0 : 1;
  }
}

}  // namespace
}  // namespace moe
