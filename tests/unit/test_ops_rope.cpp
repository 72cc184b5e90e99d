// RoPE against the rotate-half formula in double; backward is the inverse rotation.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

constexpr int64_t B = 2, T = 5, H = 3, hd = 8, C = H * hd;
constexpr float kTheta = 10000.0f;

// out = x cos + rotate_half(x) sin, rotate_half(x) = concat(-x[half:], x[:half]).
std::vector<double> rope_reference(const std::vector<float>& x) {
  std::vector<double> out(x.size());
  const int64_t half = hd / 2;
  for (int64_t row = 0; row < B * T; ++row)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < hd; ++d) {
        const int64_t i = d % half;
        const double angle = static_cast<double>(row % T) * std::pow(static_cast<double>(kTheta), -2.0 * i / hd);
        const float* xh = x.data() + row * C + h * hd;
        const double rot = d < half ? -xh[d + half] : xh[d - half];
        out[row * C + h * hd + d] = xh[d] * std::cos(angle) + rot * std::sin(angle);
      }
  return out;
}

TEST(OpsRope, ForwardMatchesRotateHalfFormulaAndMayAlias) {
  auto x = test::random_floats(B * T * C, 1);
  std::vector<float> out(x.size());
  ops::rope_forward(out.data(), x.data(), B, T, H, hd, kTheta);
  const auto ref = rope_reference(x);
  EXPECT_LT(test::max_abs_diff(out.data(), ref.data(), B * T * C), 1e-6);
  for (int64_t j = 0; j < C; ++j) EXPECT_EQ(out[j], x[j]) << "position 0 is the identity";

  auto inplace = x;
  ops::rope_forward(inplace.data(), inplace.data(), B, T, H, hd, kTheta);
  EXPECT_EQ(inplace, out);
}

TEST(OpsRope, BackwardMatchesFiniteDifferencesAndInvertsForward) {
  auto x = test::random_floats(B * T * C, 2), g = test::random_floats(B * T * C, 3);
  std::vector<float> out(x.size()), dx(x.size(), 0.0f);
  auto loss = [&] {
    ops::rope_forward(out.data(), x.data(), B, T, H, hd, kTheta);
    return test::weighted_sum(out.data(), g.data(), B * T * C);
  };
  ops::rope_backward(dx.data(), g.data(), B, T, H, hd, kTheta);
  auto r = test::grad_check(loss, x.data(), dx.data(), B * T * C);
  EXPECT_LT(r.max_rel_error, 1e-2) << test::describe(r);

  // R^T R = I: rotating back what forward rotated returns the input.
  loss();
  std::vector<float> back(x.size(), 0.0f);
  ops::rope_backward(back.data(), out.data(), B, T, H, hd, kTheta);
  EXPECT_LT(test::max_abs_diff(back.data(), x.data(), B * T * C), 1e-6);

  auto dx2 = dx;
  ops::rope_backward(dx2.data(), g.data(), B, T, H, hd, kTheta);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx2[i], 2.0f * dx[i], 1e-5) << i;
}

}  // namespace
}  // namespace moe
