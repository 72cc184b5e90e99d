// release_floats zeroes exactly the range and hands its whole pages back (resident bytes fall);
// floats outside the range keep their values. ZeRO stage 3 relies on both.
#include <gtest/gtest.h>

#include <vector>

#include "src/core/page_memory.h"

namespace moe {
namespace {

TEST(PageMemory, ReleaseZeroesTheRangeAndFreesItsPages) {
  const int64_t n = 1 << 20;  // 4 MiB
  std::vector<float> buf(size_t(n), 1.5f);
  EXPECT_EQ(resident_bytes(buf.data(), n), n * 4);
  const int64_t lo = 1001, hi = n - 777;  // deliberately not page-aligned
  release_floats(buf.data() + lo, hi - lo);
  // Measured before any released float is read: mincore counts pages mapped to the kernel's shared
  // zero page (what a read of a released page maps) as resident, though they take no memory.
  const int64_t kept = resident_bytes(buf.data(), n);
  EXPECT_LT(kept, (lo + (n - hi)) * 4 + 2 * 4096 + 1) << "whole pages inside the range must be released";
  EXPECT_GE(kept, (lo + (n - hi)) * 4);
  buf[size_t(n / 2)] = 2.0f;  // writable again, one page comes back
  EXPECT_GT(resident_bytes(buf.data(), n), kept);
  buf[size_t(n / 2)] = 0.0f;
  for (int64_t i : {int64_t(0), lo - 1, hi, n - 1}) EXPECT_EQ(buf[size_t(i)], 1.5f) << i;
  for (int64_t i : {lo, lo + 1, int64_t(n / 2), hi - 1}) EXPECT_EQ(buf[size_t(i)], 0.0f) << i;
  double sum = 0;
  for (int64_t i = lo; i < hi; ++i) sum += buf[size_t(i)];
  EXPECT_EQ(sum, 0.0);
}

TEST(PageMemory, SmallRangesAreZeroedInPlace) {
  std::vector<float> buf(64, 3.0f);
  release_floats(buf.data() + 10, 20);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(buf[size_t(i)], (i >= 10 && i < 30) ? 0.0f : 3.0f) << i;
  release_floats(buf.data(), 0);
  EXPECT_EQ(buf[0], 3.0f);
}

}  // namespace
}  // namespace moe
