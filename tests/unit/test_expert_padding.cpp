// moe/expert_padding.h: when the GPU expert GEMMs take the padded layout, and its rows per expert.
#include <gtest/gtest.h>

#include <vector>

#include "moe/expert_padding.h"

namespace moe {
namespace {

TEST(ExpertPadding, BufferRowsScaleWithTheAllowance) {
  EXPECT_EQ(expert_buffer_rows(1000, 0.0), 1000);
  EXPECT_EQ(expert_buffer_rows(1000, 1.25), 1250);
  EXPECT_EQ(expert_buffer_rows(1001, 1.25), 1252);  // rounded up
  EXPECT_EQ(expert_buffer_rows(1000, 0.5), 1000);   // never below the routed rows
  EXPECT_EQ(expert_buffer_rows(0, 2.0), 0);
}

TEST(ExpertPadding, CapIsTheLargestExpertRoundedUpWhenItFits) {
  // counts 30, 0, 33, 17: the largest (33) rounds up to 48; 4 x 48 = 192 rows.
  const std::vector<int64_t> offsets = {0, 30, 30, 63, 80};
  EXPECT_EQ(padded_expert_cap(offsets.data(), 4, 192, 1.25), 48);
  EXPECT_EQ(padded_expert_cap(offsets.data(), 4, 191, 1.25), 0);  // one row short: compact
  EXPECT_EQ(padded_expert_cap(offsets.data(), 4, 1000, 0.0), 0);  // padding off
}

TEST(ExpertPadding, ExactMultiplesAndEmptyRouting) {
  const std::vector<int64_t> even = {0, 16, 32, 48};
  EXPECT_EQ(padded_expert_cap(even.data(), 3, 48, 1.0), 16);  // even load: no padding rows at all
  const std::vector<int64_t> none = {0, 0, 0};
  EXPECT_EQ(padded_expert_cap(none.data(), 2, 100, 1.25), 0);
}

}  // namespace
}  // namespace moe
