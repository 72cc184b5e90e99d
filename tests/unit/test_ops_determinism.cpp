// The kernels split work so that each output element is computed by one thread in a fixed order:
// one thread and two threads must give the same bits (sizes here are above the threading cutoffs).
#include <gtest/gtest.h>
#include <omp.h>

#include <functional>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

// Runs fill(out) with 1 and with 2 threads from the same zeroed start and compares the bits.
void expect_same_bits_for_thread_counts(size_t n, const std::function<void(std::vector<float>&)>& fill) {
  const int saved = omp_get_max_threads();
  std::vector<float> one(n, 0.0f), two(n, 0.0f);
  omp_set_num_threads(1);
  fill(one);
  omp_set_num_threads(2);
  fill(two);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, two);
}

TEST(OpsDeterminism, AttentionSameBitsForOneAndTwoThreads) {
  const int64_t B = 2, T = 96, H = 4, KV = 2, hd = 16;  // two query blocks of the kernel
  auto q = test::random_floats(B * T * H * hd, 1), k = test::random_floats(B * T * KV * hd, 2);
  auto v = test::random_floats(B * T * KV * hd, 3), g = test::random_floats(B * T * H * hd, 4);
  std::vector<float> out(q.size()), att(B * H * T * T);
  expect_same_bits_for_thread_counts(out.size(), [&](std::vector<float>& o) {
    ops::attention_forward(o.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, KV, hd);
  });
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, KV, hd);
  expect_same_bits_for_thread_counts(k.size(), [&](std::vector<float>& dk) {
    ops::attention_backward(nullptr, dk.data(), nullptr, g.data(), att.data(), q.data(), k.data(), v.data(), B, T,
                            H, KV, hd);
  });
}

TEST(OpsDeterminism, AccumulatingOpsSameBitsForOneAndTwoThreads) {
  const int64_t N = 512, D = 160, V = 50;
  auto x = test::random_floats(N * D, 5), w = test::random_floats(D, 6), g = test::random_floats(N * D, 7);
  auto tokens = test::random_ints(N, 8, 0, V);  // many repeats
  std::vector<float> out(N * D), rstd(N);
  ops::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, D, 1e-5f);
  expect_same_bits_for_thread_counts(D, [&](std::vector<float>& dw) {
    ops::rmsnorm_backward(nullptr, dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, D);
  });
  expect_same_bits_for_thread_counts(V * D, [&](std::vector<float>& dtable) {
    ops::embedding_backward(dtable.data(), g.data(), tokens.data(), N, D);
  });
  expect_same_bits_for_thread_counts(V * D, [&](std::vector<float>& combined) {
    ops::scatter_add_rows(combined.data(), x.data(), tokens.data(), g.data(), N, D);
  });
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double ss1 = ops::sum_squares(x.data(), N * D);
  omp_set_num_threads(2);
  const double ss2 = ops::sum_squares(x.data(), N * D);
  omp_set_num_threads(saved);
  EXPECT_EQ(ss1, ss2);
}

}  // namespace
}  // namespace moe
