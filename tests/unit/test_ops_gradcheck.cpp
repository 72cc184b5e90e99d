// The finite-difference helper itself: it must pass a right gradient and flag a wrong one.
#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

TEST(OpsGradCheck, AcceptsRightAndFlagsWrongGradient) {
  auto x = test::random_floats(10, 1, 1.0f, 2.0f);
  auto loss = [&] {
    double s = 0.0;
    for (float v : x) s += static_cast<double>(v) * v * v;  // d/dx = 3 x^2
    return s;
  };
  std::vector<float> right(10), wrong(10);
  for (int i = 0; i < 10; ++i) {
    right[i] = 3.0f * x[i] * x[i];
    wrong[i] = right[i] * (i == 6 ? 1.05f : 1.0f);
  }
  const auto before = x;
  EXPECT_LT(test::max_rel_grad_error(loss, x.data(), right.data(), 10), 1e-3);
  auto r = test::grad_check(loss, x.data(), wrong.data(), 10);
  EXPECT_GT(r.max_rel_error, 0.04);
  EXPECT_EQ(r.worst_index, 6);
  EXPECT_EQ(x, before) << "inputs must be restored";
}

}  // namespace
}  // namespace moe
