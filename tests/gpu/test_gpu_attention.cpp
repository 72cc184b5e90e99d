// Attention (cuBLAS batched GEMMs + masked softmax) against the CPU twin, MHA and GQA.
#include <vector>

#include "kernels/cuda/attention.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

struct Shape {
  int64_t B, T, H, KV, hd;
  int64_t q() const { return B * T * H * hd; }
  int64_t kv() const { return B * T * KV * hd; }
  int64_t att() const { return B * H * T * T; }
};

void check_fp32(const Shape& s, uint64_t seed) {
  auto q = random_floats(s.q(), seed), k = random_floats(s.kv(), seed + 1), v = random_floats(s.kv(), seed + 2);
  auto g = random_floats(s.q(), seed + 3);
  auto dq0 = random_floats(s.q(), seed + 4), dk0 = random_floats(s.kv(), seed + 5), dv0 = random_floats(s.kv(), seed + 6);
  std::vector<float> out(s.q()), att(s.att());
  auto rdq = dq0, rdk = dk0, rdv = dv0;
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  ops::attention_backward(rdq.data(), rdk.data(), rdv.data(), g.data(), att.data(), q.data(), k.data(), v.data(),
                          s.B, s.T, s.H, s.KV, s.hd);
  Dev<float> gq(q), gk(k), gv(v), gg(g), gout(s.q()), gatt(s.att()), gdq(dq0), gdk(dk0), gdv(dv0);
  cuda::attention_forward(gout.ptr, gatt.ptr, gq.ptr, gk.ptr, gv.ptr, s.B, s.T, s.H, s.KV, s.hd, stream());
  cuda::attention_backward(gdq.ptr, gdk.ptr, gdv.ptr, gg.ptr, gatt.ptr, gq.ptr, gk.ptr, gv.ptr, s.B, s.T, s.H, s.KV,
                           s.hd, stream());
  EXPECT_LT(rel_err(gout.host(), out), kTolF32);
  EXPECT_LT(rel_err(gatt.host(), att), kTolF32);  // also checks the zero upper triangle
  EXPECT_LT(rel_err(gdq.host(), rdq), kTolF32);
  EXPECT_LT(rel_err(gdk.host(), rdk), kTolF32);
  EXPECT_LT(rel_err(gdv.host(), rdv), kTolF32);
}

TEST(GpuAttention, MultiHeadMatchesCpuFp32) {
  MOE_REQUIRE_GPU();
  check_fp32({2, 33, 4, 4, 16}, 1);
}

TEST(GpuAttention, GroupedQueryMatchesCpuFp32) {
  MOE_REQUIRE_GPU();
  check_fp32({2, 40, 6, 2, 8}, 11);  // 3 query heads per kv head: dk/dv gather from three heads
}

TEST(GpuAttention, NullGradientsAreSkipped) {
  MOE_REQUIRE_GPU();
  const Shape s{1, 17, 2, 1, 8};
  auto q = random_floats(s.q(), 21), k = random_floats(s.kv(), 22), v = random_floats(s.kv(), 23);
  auto g = random_floats(s.q(), 24);
  std::vector<float> out(s.q()), att(s.att()), rdv(s.kv(), 0.0f);
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  ops::attention_backward(nullptr, nullptr, rdv.data(), g.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T,
                          s.H, s.KV, s.hd);
  Dev<float> gq(q), gk(k), gv(v), gg(g), gout(s.q()), gatt(s.att()), gdv(s.kv());
  cuda::attention_forward(gout.ptr, gatt.ptr, gq.ptr, gk.ptr, gv.ptr, s.B, s.T, s.H, s.KV, s.hd, stream());
  cuda::attention_backward(nullptr, nullptr, gdv.ptr, gg.ptr, gatt.ptr, gq.ptr, gk.ptr, gv.ptr, s.B, s.T, s.H, s.KV,
                           s.hd, stream());
  EXPECT_LT(rel_err(gdv.host(), rdv), kTolF32);
}

TEST(GpuAttention, Bf16MatchesCpuOnRoundedInputs) {
  MOE_REQUIRE_GPU();
  const Shape s{2, 32, 4, 2, 16};
  auto q = bf16_round(random_floats(s.q(), 31)), k = bf16_round(random_floats(s.kv(), 32));
  auto v = bf16_round(random_floats(s.kv(), 33)), g = bf16_round(random_floats(s.q(), 34));
  std::vector<float> out(s.q()), att(s.att()), rdq(s.q(), 0.0f), rdk(s.kv(), 0.0f), rdv(s.kv(), 0.0f);
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  ops::attention_backward(rdq.data(), rdk.data(), rdv.data(), g.data(), att.data(), q.data(), k.data(), v.data(),
                          s.B, s.T, s.H, s.KV, s.hd);
  Dev<bf16> bq(to_bf16(q)), bk(to_bf16(k)), bv(to_bf16(v)), bg(to_bf16(g)), bout(s.q()), batt(s.att()),
      bdq(s.q()), bdk(s.kv()), bdv(s.kv());
  cuda::attention_forward(bout.ptr, batt.ptr, bq.ptr, bk.ptr, bv.ptr, s.B, s.T, s.H, s.KV, s.hd, stream());
  cuda::attention_backward(bdq.ptr, bdk.ptr, bdv.ptr, bg.ptr, batt.ptr, bq.ptr, bk.ptr, bv.ptr, s.B, s.T, s.H, s.KV,
                           s.hd, stream());
  EXPECT_LT(rel_err(to_float(bout.host()), out), kTolBf16);
  EXPECT_LT(rel_err(to_float(batt.host()), att), kTolBf16);
  EXPECT_LT(rel_err(to_float(bdq.host()), rdq), 3 * kTolBf16);  // two bf16 GEMMs deep
  EXPECT_LT(rel_err(to_float(bdk.host()), rdk), 3 * kTolBf16);
  EXPECT_LT(rel_err(to_float(bdv.host()), rdv), kTolBf16);
}

}  // namespace
}  // namespace moe::gpu_test
