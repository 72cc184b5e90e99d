// PageVector (src/core/page_vector.h): a large buffer is zero and holds no pages until written;
// writing part of it makes only that part resident; small buffers (calloc) are zero too; explicit
// values are still written.
#include <gtest/gtest.h>

#include <unistd.h>

#include "src/core/page_memory.h"
#include "src/core/page_vector.h"

namespace moe {
namespace {

TEST(PageVector, LargeBuffersStartUntouched) {
  const int64_t page = sysconf(_SC_PAGESIZE), n = 256 * page / 4;  // 256 pages of floats
  PageVector v(static_cast<size_t>(n));
  EXPECT_EQ(resident_bytes(v.data(), n), 0);
  for (int64_t i = 0; i < n / 4; ++i) v[size_t(i)] = 1.0f;  // the first quarter
  const int64_t held = resident_bytes(v.data(), n);
  EXPECT_GE(held, n);  // n / 4 floats = n bytes
  EXPECT_LE(held, n + 2 * page);
  for (int64_t i = n / 4; i < n; i += 997) EXPECT_EQ(v[size_t(i)], 0.0f);
}

TEST(PageVector, SmallBuffersAndExplicitValues) {
  PageVector small(100);
  for (float x : small) EXPECT_EQ(x, 0.0f);
  PageVector filled(100000, 2.5f);
  EXPECT_EQ(filled.front(), 2.5f);
  EXPECT_EQ(filled.back(), 2.5f);
  PageVector grown;
  grown.resize(70000);  // the first resize of an empty vector is zero as well
  EXPECT_EQ(grown[69999], 0.0f);
}

}  // namespace
}  // namespace moe
