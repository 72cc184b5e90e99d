// moe/expert_padding.h: when the GPU expert GEMMs take the blocked layout, and its blocks.
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

TEST(ExpertPadding, OneBlockPerExpertWhenTheLargestFits) {
  // counts 30, 0, 33, 17: the largest (33) rounds up to 48; 4 x 48 = 192 rows.
  const std::vector<int64_t> offsets = {0, 30, 30, 63, 80};
  const ExpertBlocks b = expert_blocks(offsets.data(), 4, 192, 2.4);
  EXPECT_EQ(b.block, 48);
  EXPECT_EQ(b.start, (std::vector<int64_t>{0, 48, 48, 96, 144}));  // the empty expert owns no block
  EXPECT_EQ(b.max_blocks, 1);
  EXPECT_EQ(b.blocks(1), 0);
  EXPECT_EQ(b.rows(), 144);
  EXPECT_EQ(expert_blocks(offsets.data(), 4, 1000, 0.0).block, 0);  // padding off: compact
}

TEST(ExpertPadding, SkewedLoadsTakeSeveralSmallerBlocks) {
  // 100 routed rows, one expert holds 70: one block each would need 4 x 80 rows; 150 buffer rows
  // leave (150 - 100) / 4 = 12 -> no 16-row block fits; 170 rows leave 17 -> blocks of 16.
  const std::vector<int64_t> offsets = {0, 70, 80, 100, 100};
  EXPECT_EQ(expert_blocks(offsets.data(), 4, 150, 1.5).block, 0);
  const ExpertBlocks b = expert_blocks(offsets.data(), 4, 170, 1.7);
  EXPECT_EQ(b.block, 16);
  EXPECT_EQ(b.start, (std::vector<int64_t>{0, 80, 96, 128, 128}));  // 5, 1, 2 and 0 blocks
  EXPECT_EQ(b.max_blocks, 5);
  EXPECT_LE(b.rows(), 170);
}

TEST(ExpertPadding, EveryRoutingFitsTheBuffer) {
  // Whatever the counts, the layout never needs more rows than the buffers hold.
  for (int64_t heavy = 0; heavy <= 1000; heavy += 37) {
    const std::vector<int64_t> offsets = {0, heavy, heavy + (1000 - heavy) / 3, 1000 - 1, 1000};
    const int64_t rows = expert_buffer_rows(1000, 1.25);
    const ExpertBlocks b = expert_blocks(offsets.data(), 4, rows, 1.25);
    ASSERT_GT(b.block, 0) << heavy;
    EXPECT_LE(b.rows(), rows) << heavy;
    for (int64_t e = 0; e < 4; ++e) EXPECT_GE(b.start[size_t(e + 1)] - b.start[size_t(e)], offsets[e + 1] - offsets[e]);
  }
  const std::vector<int64_t> none = {0, 0, 0};
  EXPECT_EQ(expert_blocks(none.data(), 2, 100, 1.25).block, 0);
}

}  // namespace
}  // namespace moe
