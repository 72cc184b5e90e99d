// The vectorisable exp used by softmax, cross-entropy, attention and SwiGLU on CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace moe {
namespace {

TEST(OpsFastExp, WithinFewUlpOfExpfAndSaturatesLikeIt) {
  double worst_ulp = 0.0;
  for (float x = -87.0f; x < 88.7f; x += 0.0137f) {
    const float ref = std::exp(x), got = ops::cpu::fast_exp(x);
    const double ulp = std::nextafter(ref, std::numeric_limits<float>::infinity()) - ref;
    worst_ulp = std::max(worst_ulp, std::fabs(static_cast<double>(got) - ref) / ulp);
  }
  EXPECT_LE(worst_ulp, 4.0);
  EXPECT_EQ(ops::cpu::fast_exp(0.0f), 1.0f);
  EXPECT_GT(ops::cpu::fast_exp(88.72f), 3.3e38f);  // 2^128 range edge stays finite
  EXPECT_EQ(ops::cpu::fast_exp(89.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(ops::cpu::fast_exp(-104.0f), 0.0f);
  EXPECT_TRUE(std::isnan(ops::cpu::fast_exp(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace moe
