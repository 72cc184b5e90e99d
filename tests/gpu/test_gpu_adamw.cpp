// Fused AdamW and the deterministic sum of squares against the CPU twins.
#include <vector>

#include "kernels/cuda/adamw.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

TEST(GpuAdamw, ThreeStepsMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t n = 5000;
  auto p = random_floats(n, 1), m = std::vector<float>(n, 0.0f), v = std::vector<float>(n, 0.0f);
  Dev<float> gp(p), gm(m), gv(v);
  for (int64_t step = 1; step <= 3; ++step) {
    auto g = random_floats(n, 10 + step);
    ops::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
    Dev<float> gg(g);
    cuda::adamw_update(gp.ptr, gg.ptr, gm.ptr, gv.ptr, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step, stream());
  }
  EXPECT_LT(rel_err(gp.host(), p), kTolF32);
  EXPECT_LT(rel_err(gm.host(), m), kTolF32);
  EXPECT_LT(rel_err(gv.host(), v), kTolF32);
}

// Clipping folded in (grad_scale) and the bf16 compute copy written in the same pass: the CPU fused
// twin's weights and moments, and copy == the updated weights rounded to bf16, bit for bit.
TEST(GpuAdamw, FusedScaleAndBf16CopyMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t n = 4099;
  auto p = random_floats(n, 3), m = std::vector<float>(n, 0.0f), v = std::vector<float>(n, 0.0f);
  std::vector<float> copy(n, 0.0f);
  Dev<float> gp(p), gm(m), gv(v);
  Dev<bf16> gcopy(n);
  for (int64_t step = 1; step <= 2; ++step) {
    auto g = random_floats(n, 20 + step);
    ops::adamw_update_fused(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step, 0.37f,
                            copy.data(), Precision::bf16);
    Dev<float> gg(g);
    cuda::adamw_update_fused(gp.ptr, gg.ptr, gm.ptr, gv.ptr, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step, 0.37f,
                             gcopy.ptr, stream());
    EXPECT_EQ(gg.host(), g) << "the gradient buffer must stay unscaled";
  }
  const std::vector<float> got = gp.host();
  EXPECT_LT(rel_err(got, p), kTolF32);
  EXPECT_LT(rel_err(gm.host(), m), kTolF32);
  EXPECT_LT(rel_err(gv.host(), v), kTolF32);
  const std::vector<float> got_copy = to_float(gcopy.host());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got_copy[i], __bfloat162float(__float2bfloat16_rn(got[i]))) << i;
}

TEST(GpuSumSquares, MatchesCpuAndRepeatsBitForBit) {
  MOE_REQUIRE_GPU();
  const int64_t n = 1'000'003;
  auto x = random_floats(n, 2);
  const double ref = ops::sum_squares(x.data(), n);
  Dev<float> gx(x);
  const double a = cuda::sum_squares(gx.ptr, n, stream()), b = cuda::sum_squares(gx.ptr, n, stream());
  EXPECT_NEAR(a, ref, 1e-10 * ref);
  EXPECT_EQ(a, b);
  EXPECT_EQ(cuda::sum_squares(gx.ptr, 0, stream()), 0.0);
}

}  // namespace
}  // namespace moe::gpu_test
