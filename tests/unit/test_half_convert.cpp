// fp32 <-> bf16 / fp16 conversions (kernels/cpu/half.h): the scalar definitions on hand-picked
// cases (ties to even, overflow, subnormals, NaN), every half bit pattern and the midpoints around
// it through the vector and the scalar paths, against the compiler's own _Float16 conversion.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/half.h"

namespace moe::half {
namespace {

// Inputs that exercise rounding: every bf16 value with low halves 0, 1, just below/at/above the
// tie, and all ones; every fp16 value and fp32 neighbours of it and of the midpoint to the next.
std::vector<float> hard_inputs() {
  std::vector<float> in;
  for (uint32_t h = 0; h < 65536; ++h)
    for (uint32_t lo : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) in.push_back(float_of((h << 16) | lo));
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t u = bits_of(fp16_to_fp32_ref(uint16_t(h)));
    for (int d = -1; d <= 1; ++d) {
      in.push_back(float_of(u + uint32_t(d)));
      in.push_back(float_of(u + 0x1000u + uint32_t(d)));  // around the midpoint above (normal range)
    }
  }
  return in;
}

// Results compared as bits; NaN results as "is NaN with the same sign and quiet bit".
void expect_same_bits(uint16_t got, uint16_t want, float x) {
  EXPECT_EQ(got, want) << "input bits 0x" << std::hex << bits_of(x);
}

TEST(HalfConvert, Bf16TiesToEvenAndSpecials) {
  EXPECT_EQ(fp32_to_bf16_ref(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16_ref(float_of(0x3f808000u)), 0x3f80);  // tie, even below
  EXPECT_EQ(fp32_to_bf16_ref(float_of(0x3f818000u)), 0x3f82);  // tie, odd below: up
  EXPECT_EQ(fp32_to_bf16_ref(float_of(0x3f808001u)), 0x3f81);  // above the tie
  EXPECT_EQ(fp32_to_bf16_ref(float_of(0x3f807fffu)), 0x3f80);  // below the tie
  EXPECT_EQ(fp32_to_bf16_ref(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(fp32_to_bf16_ref(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(fp32_to_bf16_ref(float_of(0x00018000u)), 0x0002);  // subnormal tie, odd: up
  EXPECT_EQ(fp32_to_bf16_ref(-0.0f), 0x8000);
  const uint16_t nan = fp32_to_bf16_ref(float_of(0x7f800001u));  // signalling NaN with a low payload
  EXPECT_TRUE(std::isnan(bf16_to_fp32(nan)));
  EXPECT_EQ(nan & 0x0040, 0x0040);
}

TEST(HalfConvert, Fp16TiesToEvenOverflowSubnormals) {
  EXPECT_EQ(fp32_to_fp16_ref(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16_ref(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16_ref(65519.99f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16_ref(65520.0f), 0x7c00);  // the tie above the largest half goes to inf
  EXPECT_EQ(fp32_to_fp16_ref(-1e6f), 0xfc00);
  EXPECT_EQ(fp32_to_fp16_ref(std::ldexp(1.0f, -24)), 0x0001);   // smallest subnormal
  EXPECT_EQ(fp32_to_fp16_ref(std::ldexp(1.0f, -25)), 0x0000);   // tie to even: zero
  EXPECT_EQ(fp32_to_fp16_ref(std::ldexp(3.0f, -25)), 0x0002);   // 1.5 units: tie, odd below: up
  EXPECT_EQ(fp32_to_fp16_ref(std::ldexp(1.0f, -14)), 0x0400);   // smallest normal
  EXPECT_EQ(fp32_to_fp16_ref(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie, even below
  EXPECT_EQ(fp32_to_fp16_ref(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, odd below: up
  EXPECT_TRUE(std::isnan(fp16_to_fp32_ref(fp32_to_fp16_ref(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(fp16_to_fp32_ref(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32_ref(0xfc00), -std::numeric_limits<float>::infinity());
}

TEST(HalfConvert, EveryHalfPatternRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float b = bf16_to_fp32(uint16_t(h)), f = fp16_to_fp32_ref(uint16_t(h));
    if (!std::isnan(b)) {
      EXPECT_EQ(fp32_to_bf16_ref(b), h);
    }
    if (!std::isnan(f)) {
      EXPECT_EQ(fp32_to_fp16_ref(f), h);
    } else {
      EXPECT_TRUE(std::isnan(fp16_to_fp32_ref(fp32_to_fp16_ref(f))));
    }
  }
}

TEST(HalfConvert, ScalarFp16MatchesTheCompiler) {
  for (float x : hard_inputs()) {
    const _Float16 y = static_cast<_Float16>(x);
    uint16_t want;
    std::memcpy(&want, &y, 2);
    if (!std::isnan(x)) {
      expect_same_bits(fp32_to_fp16_ref(x), want, x);
    }
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t u = uint16_t(h);
    _Float16 y;
    std::memcpy(&y, &u, 2);
    EXPECT_EQ(bits_of(fp16_to_fp32_ref(u)), bits_of(static_cast<float>(y))) << h;
  }
}

// The array functions (AVX-512 BF16 / F16C where present) give the scalar bits, NaN included.
TEST(HalfConvert, VectorPathsMatchScalar) {
  const std::vector<float> in = hard_inputs();
  const int64_t n = int64_t(in.size()) - 3;  // a tail that is not a multiple of 16
  for (bool vec : {true, false}) {
    set_vector_paths(vec);
    std::vector<uint16_t> b(in.size()), f(in.size());
    std::vector<float> back(in.size()), rb(in.size()), rf(in.size());
    fp32_to_bf16(b.data(), in.data(), n);
    fp32_to_fp16(f.data(), in.data(), n);
    round_to(rb.data(), in.data(), n, Precision::bf16);
    round_to(rf.data(), in.data(), n, Precision::fp16);
    for (int64_t i = 0; i < n; ++i) {
      expect_same_bits(b[size_t(i)], fp32_to_bf16_ref(in[size_t(i)]), in[size_t(i)]);
      expect_same_bits(f[size_t(i)], fp32_to_fp16_ref(in[size_t(i)]), in[size_t(i)]);
      EXPECT_EQ(bits_of(rb[size_t(i)]), bits_of(bf16_to_fp32(fp32_to_bf16_ref(in[size_t(i)]))));
      EXPECT_EQ(bits_of(rf[size_t(i)]), bits_of(fp16_to_fp32_ref(fp32_to_fp16_ref(in[size_t(i)]))));
      if (::testing::Test::HasFailure()) break;
    }
    std::vector<uint16_t> all(65536);
    for (uint32_t h = 0; h < 65536; ++h) all[h] = uint16_t(h);
    fp16_to_fp32(back.data(), all.data(), 65536);
    for (uint32_t h = 0; h < 65536; ++h) EXPECT_EQ(bits_of(back[h]), bits_of(fp16_to_fp32_ref(uint16_t(h)))) << h;
    bf16_to_fp32(back.data(), all.data(), 65536);
    for (uint32_t h = 0; h < 65536; ++h) EXPECT_EQ(bits_of(back[h]), uint32_t(h) << 16);
  }
  set_vector_paths(true);
}

TEST(HalfConvert, RoundToIsIdempotentAndFp32IsIdentity) {
  const std::vector<float> in = hard_inputs();
  std::vector<float> once(in.size()), twice(in.size()), same(in.size());
  round_to(once.data(), in.data(), int64_t(in.size()), Precision::bf16);
  round_to(twice.data(), once.data(), int64_t(in.size()), Precision::bf16);
  round_to(same.data(), in.data(), int64_t(in.size()), Precision::fp32);
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(bits_of(once[i]), bits_of(twice[i]));
    EXPECT_EQ(bits_of(same[i]), bits_of(in[i]));
  }
}

}  // namespace
}  // namespace moe::half
