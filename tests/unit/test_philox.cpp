#include <gtest/gtest.h>

#include <cmath>

#include "src/core/philox.h"

namespace moe {

TEST(CorePhilox, DeterministicAndKeyed) {
  uint64_t a = rng_key(1, "layers.0.attention.wq.weight"), b = rng_key(1, "layers.0.attention.wk.weight");
  EXPECT_NE(a, b);
  EXPECT_NE(rng_key(1, "x"), rng_key(2, "x"));
  EXPECT_EQ(philox_normal(a, 17), philox_normal(a, 17));
  EXPECT_NE(philox_normal(a, 17), philox_normal(a, 18));
}

// Known-answer test from the Random123 distribution (philox4x32_10, zero counter and key).
TEST(CorePhilox, KnownAnswer) {
  Philox4x32 r = philox4x32(0, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

TEST(CorePhilox, NormalMoments) {
  uint64_t key = rng_key(7, "w");
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double x = philox_normal(key, i);
    sum += x;
    sq += x * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0, 0.01);
}

}  // namespace moe
