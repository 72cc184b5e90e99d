// Embedding lookup and its scatter-add backward (tokens repeat).
#include <gtest/gtest.h>

#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

TEST(OpsEmbedding, ForwardCopiesRows) {
  const int64_t V = 6, D = 5;
  const std::vector<int32_t> tokens = {3, 0, 3, 5};
  const int64_t N = static_cast<int64_t>(tokens.size());
  auto table = test::random_floats(V * D, 1);
  std::vector<float> out(N * D);
  ops::embedding_forward(out.data(), tokens.data(), table.data(), N, D);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < D; ++j) EXPECT_EQ(out[i * D + j], table[tokens[i] * D + j]) << i << " " << j;
}

TEST(OpsEmbedding, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int64_t V = 7, D = 70, N = 9;  // D > 64 crosses a column block
  auto tokens = test::random_ints(N, 2, 0, V);
  tokens[1] = tokens[4] = tokens[8];  // repeated tokens must sum
  auto table = test::random_floats(V * D, 3), g = test::random_floats(N * D, 4);
  std::vector<float> out(N * D), dtable(V * D, 0.0f);
  auto loss = [&] {
    ops::embedding_forward(out.data(), tokens.data(), table.data(), N, D);
    return test::weighted_sum(out.data(), g.data(), N * D);
  };
  ops::embedding_backward(dtable.data(), g.data(), tokens.data(), N, D);
  auto r = test::grad_check(loss, table.data(), dtable.data(), V * D);
  EXPECT_LT(r.max_rel_error, 1e-2) << test::describe(r);

  auto d2 = dtable;
  ops::embedding_backward(d2.data(), g.data(), tokens.data(), N, D);
  for (int64_t i = 0; i < V * D; ++i) EXPECT_NEAR(d2[i], 2.0f * dtable[i], 1e-5) << i;
}

}  // namespace
}  // namespace moe
