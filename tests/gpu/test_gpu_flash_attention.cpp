// The tiled (flash) bf16 attention against the CPU attention on bf16-rounded inputs: forward
// output, the saved logsumexp (from the CPU probabilities) and all three gradients, with several
// query and key tiles, grouped-query heads and both head sizes.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cuda/flash_attention.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

struct Shape {
  int64_t B, T, H, KV, hd;
  int64_t q() const { return B * T * H * hd; }
  int64_t kv() const { return B * T * KV * hd; }
};

void check(const Shape& s, uint64_t seed, cuda::FlashBlock block) {
  auto q = bf16_round(random_floats(s.q(), seed)), k = bf16_round(random_floats(s.kv(), seed + 1));
  auto v = bf16_round(random_floats(s.kv(), seed + 2)), g = bf16_round(random_floats(s.q(), seed + 3));
  std::vector<float> out(s.q()), att(s.B * s.H * s.T * s.T), rdq(s.q(), 0.0f), rdk(s.kv(), 0.0f), rdv(s.kv(), 0.0f);
  ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.T, s.H, s.KV, s.hd);
  ops::attention_backward(rdq.data(), rdk.data(), rdv.data(), g.data(), att.data(), q.data(), k.data(), v.data(),
                          s.B, s.T, s.H, s.KV, s.hd);
  Dev<bf16> bq(to_bf16(q)), bk(to_bf16(k)), bv(to_bf16(v)), bg(to_bf16(g)), bout(s.q()), bdq(s.q()), bdk(s.kv()),
      bdv(s.kv());
  Dev<float> lse(s.B * s.H * s.T);
  cuda::flash_attention_forward(bout.ptr, lse.ptr, bq.ptr, bk.ptr, bv.ptr, s.B, s.T, s.H, s.KV, s.hd, stream(), block);
  // The kernels accumulate: start the gradients from a known value, and pass the bf16 output.
  const auto init = bf16_round(random_floats(s.kv(), seed + 4));
  Dev<bf16> bdk0(to_bf16(init));
  cuda::flash_attention_backward(bdq.ptr, bdk0.ptr, bdv.ptr, bg.ptr, bout.ptr, lse.ptr, bq.ptr, bk.ptr, bv.ptr, s.B,
                                 s.T, s.H, s.KV, s.hd, stream(), block);
  EXPECT_LT(rel_err(to_float(bout.host()), out), kTolBf16);
  // lse from the forward's scores: p[t, j] = exp(s - lse), so lse = s_j - log p_j at any unmasked j;
  // check it through the diagonal entry p[t, t] = exp(q_t.k_t * scale - lse).
  const auto l = lse.host();
  double worst = 0;
  const double scale = 1.0 / std::sqrt(double(s.hd));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t t = 0; t < s.T; ++t) {
        const int64_t kvh = h / (s.H / s.KV);
        double dot = 0;
        for (int64_t d = 0; d < s.hd; ++d)
          dot += double(q[((b * s.T + t) * s.H + h) * s.hd + d]) * k[((b * s.T + t) * s.KV + kvh) * s.hd + d];
        const double p = att[((b * s.H + h) * s.T + t) * s.T + t];
        worst = std::max(worst, std::fabs(std::exp(dot * scale - l[(b * s.H + h) * s.T + t]) - p));
      }
  EXPECT_LT(worst, 1e-3);
  auto dk = to_float(bdk0.host());
  for (size_t i = 0; i < dk.size(); ++i) dk[i] -= init[i];
  EXPECT_LT(rel_err(to_float(bdq.host()), rdq), 3 * kTolBf16);
  EXPECT_LT(rel_err(dk, rdk), 3 * kTolBf16 + 1e-2);  // plus the rounding of the initial value
  EXPECT_LT(rel_err(to_float(bdv.host()), rdv), 2 * kTolBf16);
}

// Both block shapes (k128 runs as k64 where T % 128 != 0).
void check(const Shape& s, uint64_t seed) {
  for (const auto block : {cuda::FlashBlock::k64, cuda::FlashBlock::k128}) {
    SCOPED_TRACE(block == cuda::FlashBlock::k64 ? "64-row blocks" : "128-row blocks");
    check(s, seed, block);
  }
}

TEST(GpuFlashAttention, Head64GroupedQueryMatchesCpu) {
  MOE_REQUIRE_GPU();
  check({2, 192, 4, 2, 64}, 41);  // three query tiles, two query heads per kv head
}

// T % 128 == 0: with FlashBlock::k128, 8-warp blocks of 128 query rows (forward: the first block's
// lower half sees a masked last key tile) and of 128 keys (backward: two key blocks, four query
// tiles, the second key half's dq partials handed over through shared memory).
TEST(GpuFlashAttention, Head64With128RowBlocksMatchesCpu) {
  MOE_REQUIRE_GPU();
  check({1, 256, 4, 2, 64}, 61);
}

TEST(GpuFlashAttention, Head128MatchesCpu) {
  MOE_REQUIRE_GPU();
  check({1, 128, 2, 1, 128}, 51);  // one 128-row block with k128
  check({1, 192, 2, 1, 128}, 52);  // T % 128 != 0: 64-row blocks either way
}

// accumulate = false (the device step's first writer): dq, dk, dv start as NaN and are not read.
TEST(GpuFlashAttention, BackwardOverwriteEqualsAccumulatingIntoZeros) {
  MOE_REQUIRE_GPU();
  const int64_t B = 1, T = 128, H = 4, KV = 2, hd = 64, nq = B * T * H * hd, nkv = B * T * KV * hd;
  Dev<bf16> q(to_bf16(random_floats(nq, 14))), k(to_bf16(random_floats(nkv, 15))), v(to_bf16(random_floats(nkv, 16)));
  Dev<bf16> g(to_bf16(random_floats(nq, 17))), out(nq);
  Dev<float> lse(B * H * T);
  cuda::flash_attention_forward(out.ptr, lse.ptr, q.ptr, k.ptr, v.ptr, B, T, H, KV, hd, stream());
  for (const auto block : {cuda::FlashBlock::k64, cuda::FlashBlock::k128}) {
    Dev<bf16> zq(nq), zk(nkv), zv(nkv);
    const auto nan_q = to_bf16(std::vector<float>(size_t(nq), std::numeric_limits<float>::quiet_NaN()));
    const auto nan_kv = to_bf16(std::vector<float>(size_t(nkv), std::numeric_limits<float>::quiet_NaN()));
    Dev<bf16> oq(nan_q), ok(nan_kv), ov(nan_kv);
    cuda::flash_attention_backward(zq.ptr, zk.ptr, zv.ptr, g.ptr, out.ptr, lse.ptr, q.ptr, k.ptr, v.ptr, B, T, H, KV,
                                   hd, stream(), block);
    cuda::flash_attention_backward(oq.ptr, ok.ptr, ov.ptr, g.ptr, out.ptr, lse.ptr, q.ptr, k.ptr, v.ptr, B, T, H, KV,
                                   hd, stream(), block, /*accumulate=*/false);
    // dk, dv: the same sums rounded once; dq: the same fp32 atomic sums in any order (rounding).
    EXPECT_EQ(bits(ok.host()), bits(zk.host()));
    EXPECT_EQ(bits(ov.host()), bits(zv.host()));
    EXPECT_LT(rel_err(to_float(oq.host()), to_float(zq.host())), 1e-2);
  }
}

TEST(GpuFlashAttention, RefusesUnsupportedShapes) {
  EXPECT_TRUE(cuda::flash_attention_supported(2048, 64));
  EXPECT_TRUE(cuda::flash_attention_supported(64, 128));
  EXPECT_FALSE(cuda::flash_attention_supported(100, 64));
  EXPECT_FALSE(cuda::flash_attention_supported(128, 96));
}

}  // namespace
}  // namespace moe::gpu_test
