// Causal GQA attention forward against a double triple loop; backward against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

struct Shape {
  int64_t B, T, H, KV, hd;
  int64_t q_size() const { return B * T * H * hd; }
  int64_t kv_size() const { return B * T * KV * hd; }
  int64_t att_size() const { return B * H * T * T; }
};

std::vector<double> attention_reference(const Shape& s, const std::vector<float>& q, const std::vector<float>& k,
                                        const std::vector<float>& v) {
  std::vector<double> out(s.q_size(), 0.0);
  const int64_t qC = s.H * s.hd, kvC = s.KV * s.hd;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      const int64_t kvh = h / (s.H / s.KV);
      for (int64_t t = 0; t < s.T; ++t) {
        std::vector<double> p(t + 1);
        double mx = -1e300, sum = 0.0;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < s.hd; ++d)
            dot += static_cast<double>(q[(b * s.T + t) * qC + h * s.hd + d]) * k[(b * s.T + j) * kvC + kvh * s.hd + d];
          p[j] = dot / std::sqrt(static_cast<double>(s.hd));
          mx = std::max(mx, p[j]);
        }
        for (auto& x : p) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t d = 0; d < s.hd; ++d)
            out[(b * s.T + t) * qC + h * s.hd + d] += p[j] / sum * v[(b * s.T + j) * kvC + kvh * s.hd + d];
      }
    }
  return out;
}

TEST(OpsAttention, ForwardMatchesTripleLoopWithGqa) {
  const Shape s{2, 6, 4, 2, 8};
  auto q = test::random_floats(s.q_size(), 1, -2.0f, 2.0f), k = test::random_floats(s.kv_size(), 2, -2.0f, 2.0f);
  auto v = test::random_floats(s.kv_size(), 3);
  std::vector<float> out(s.q_size()), att(s.att_size(), 7.0f);
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  const auto ref = attention_reference(s, q, k, v);
  EXPECT_LT(test::max_abs_diff(out.data(), ref.data(), s.q_size()), 1e-5);
  for (int64_t row = 0; row < s.B * s.H * s.T; ++row) {
    const int64_t t = row % s.T;
    double sum = 0.0;
    for (int64_t j = 0; j < s.T; ++j) {
      if (j > t) {
        EXPECT_EQ(att[row * s.T + j], 0.0f) << "above the diagonal";
      }
      sum += att[row * s.T + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << row;
  }
}

TEST(OpsAttention, BackwardMatchesFiniteDifferencesWithGqa) {
  const Shape s{2, 5, 4, 2, 4};
  auto q = test::random_floats(s.q_size(), 4), k = test::random_floats(s.kv_size(), 5);
  auto v = test::random_floats(s.kv_size(), 6), g = test::random_floats(s.q_size(), 7);
  std::vector<float> out(s.q_size()), att(s.att_size());
  std::vector<float> dq(s.q_size(), 0.0f), dk(s.kv_size(), 0.0f), dv(s.kv_size(), 0.0f);
  auto loss = [&] {
    ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
    return test::weighted_sum(out.data(), g.data(), s.q_size());
  };
  loss();
  ops::attention_backward(dq.data(), dk.data(), dv.data(), g.data(), att.data(), q.data(), k.data(), v.data(), s.B,
                          s.T, s.H, s.KV, s.hd);
  auto rq = test::grad_check(loss, q.data(), dq.data(), s.q_size());
  EXPECT_LT(rq.max_rel_error, 1e-2) << "dq " << test::describe(rq);
  auto rk = test::grad_check(loss, k.data(), dk.data(), s.kv_size());
  EXPECT_LT(rk.max_rel_error, 1e-2) << "dk " << test::describe(rk);
  auto rv = test::grad_check(loss, v.data(), dv.data(), s.kv_size());
  EXPECT_LT(rv.max_rel_error, 1e-2) << "dv " << test::describe(rv);
}

// T past the kernel's 64-row query blocks, the last one partial: the blocks' key ranges and the
// zeroed triangle must join up.
TEST(OpsAttention, ForwardAcrossQueryBlocks) {
  const Shape s{2, 150, 2, 1, 8};
  auto q = test::random_floats(s.q_size(), 21, -2.0f, 2.0f), k = test::random_floats(s.kv_size(), 22, -2.0f, 2.0f);
  auto v = test::random_floats(s.kv_size(), 23);
  std::vector<float> out(s.q_size()), att(s.att_size(), 7.0f);
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  const auto ref = attention_reference(s, q, k, v);
  EXPECT_LT(test::max_abs_diff(out.data(), ref.data(), s.q_size()), 1e-5);
  for (int64_t row = 0; row < s.B * s.H * s.T; ++row)
    for (int64_t j = row % s.T + 1; j < s.T; ++j) ASSERT_EQ(att[row * s.T + j], 0.0f) << row << " " << j;
}

TEST(OpsAttention, BackwardAcrossQueryBlocks) {
  const Shape s{1, 70, 2, 1, 4};
  auto q = test::random_floats(s.q_size(), 24), k = test::random_floats(s.kv_size(), 25);
  auto v = test::random_floats(s.kv_size(), 26), g = test::random_floats(s.q_size(), 27);
  std::vector<float> out(s.q_size()), att(s.att_size());
  std::vector<float> dq(s.q_size(), 0.0f), dk(s.kv_size(), 0.0f), dv(s.kv_size(), 0.0f);
  auto loss = [&] {
    ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
    return test::weighted_sum(out.data(), g.data(), s.q_size());
  };
  loss();
  ops::attention_backward(dq.data(), dk.data(), dv.data(), g.data(), att.data(), q.data(), k.data(), v.data(), s.B,
                          s.T, s.H, s.KV, s.hd);
  auto rq = test::grad_check(loss, q.data(), dq.data(), s.q_size());
  EXPECT_LT(rq.max_rel_error, 1e-2) << "dq " << test::describe(rq);
  auto rk = test::grad_check(loss, k.data(), dk.data(), s.kv_size());
  EXPECT_LT(rk.max_rel_error, 1e-2) << "dk " << test::describe(rk);
  auto rv = test::grad_check(loss, v.data(), dv.data(), s.kv_size());
  EXPECT_LT(rv.max_rel_error, 1e-2) << "dv " << test::describe(rv);
}

TEST(OpsAttention, BackwardAccumulatesAndSkipsNull) {
  const Shape s{1, 4, 2, 1, 4};
  auto q = test::random_floats(s.q_size(), 8), k = test::random_floats(s.kv_size(), 9);
  auto v = test::random_floats(s.kv_size(), 10), g = test::random_floats(s.q_size(), 11);
  std::vector<float> out(s.q_size()), att(s.att_size());
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  std::vector<float> dq(s.q_size(), 0.0f), dk(s.kv_size(), 0.0f), dv(s.kv_size(), 0.0f);
  auto backward = [&](float* a, float* b, float* c) {
    ops::attention_backward(a, b, c, g.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  };
  backward(dq.data(), dk.data(), dv.data());
  auto dq2 = dq, dk2 = dk, dv2 = dv;
  backward(dq2.data(), nullptr, nullptr);
  backward(nullptr, dk2.data(), nullptr);
  backward(nullptr, nullptr, dv2.data());
  for (size_t i = 0; i < dq.size(); ++i) EXPECT_NEAR(dq2[i], 2.0f * dq[i], 1e-5) << i;
  for (size_t i = 0; i < dk.size(); ++i) EXPECT_NEAR(dk2[i], 2.0f * dk[i], 1e-5) << i;
  for (size_t i = 0; i < dv.size(); ++i) EXPECT_NEAR(dv2[i], 2.0f * dv[i], 1e-5) << i;
}

}  // namespace
}  // namespace moe
