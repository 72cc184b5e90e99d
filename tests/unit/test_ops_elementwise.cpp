// add, scale and SwiGLU against their formulas; SwiGLU backward against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

using test::random_floats;

TEST(OpsElementwise, AddAndScaleInplace) {
  const int64_t n = 37;
  auto a = random_floats(n, 1), b = random_floats(n, 2);
  auto sum = a;
  ops::add_inplace(sum.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(sum[i], a[i] + b[i]) << i;
  ops::scale_inplace(sum.data(), -2.5f, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(sum[i], (a[i] + b[i]) * -2.5f) << i;
}

TEST(OpsSwiglu, ForwardMatchesFormula) {
  const int64_t n = 41;
  auto a = random_floats(n, 3, -6.0f, 6.0f), b = random_floats(n, 4);
  std::vector<float> out(n);
  ops::swiglu_forward(out.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double silu = a[i] / (1.0 + std::exp(-static_cast<double>(a[i])));
    EXPECT_NEAR(out[i], silu * b[i], 1e-6) << i;
  }
}

TEST(OpsSwiglu, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int64_t n = 29;
  auto a = random_floats(n, 5, -4.0f, 4.0f), b = random_floats(n, 6), g = random_floats(n, 7);
  std::vector<float> out(n), da(n, 0.0f), db(n, 0.0f);
  auto loss = [&] {
    ops::swiglu_forward(out.data(), a.data(), b.data(), n);
    return test::weighted_sum(out.data(), g.data(), n);
  };
  ops::swiglu_backward(da.data(), db.data(), g.data(), a.data(), b.data(), n);
  auto ra = test::grad_check(loss, a.data(), da.data(), n);
  EXPECT_LT(ra.max_rel_error, 1e-2) << test::describe(ra);
  auto rb = test::grad_check(loss, b.data(), db.data(), n);
  EXPECT_LT(rb.max_rel_error, 1e-2) << test::describe(rb);

  auto da2 = da, db2 = db;
  ops::swiglu_backward(da2.data(), db2.data(), g.data(), a.data(), b.data(), n);
  ops::swiglu_backward(nullptr, nullptr, g.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(da2[i], 2.0f * da[i], 1e-5) << i;
    EXPECT_NEAR(db2[i], 2.0f * db[i], 1e-5) << i;
  }
}

}  // namespace
}  // namespace moe
