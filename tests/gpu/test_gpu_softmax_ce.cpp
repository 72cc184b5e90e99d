// Softmax and fused cross-entropy against the CPU twins (fp32 and bf16 logits).
#include <cmath>
#include <vector>

#include "kernels/cuda/softmax_ce.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

TEST(GpuSoftmax, ForwardBackwardMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t N = 19, C = 777;
  auto x = random_floats(N * C, 1, -8.0f, 8.0f), dp = random_floats(N * C, 2), dl0 = random_floats(N * C, 3);
  std::vector<float> p(N * C);
  auto rdl = dl0;
  ops::softmax_forward(p.data(), x.data(), N, C);
  ops::softmax_backward(rdl.data(), dp.data(), p.data(), N, C);
  Dev<float> gx(x), gdp(dp), gp(N * C), gdl(dl0);
  cuda::softmax_forward(gp.ptr, gx.ptr, N, C, stream());
  cuda::softmax_backward(gdl.ptr, gdp.ptr, gp.ptr, N, C, stream());
  EXPECT_LT(rel_err(gp.host(), p), kTolF32);
  EXPECT_LT(rel_err(gdl.host(), rdl), kTolF32);
}

TEST(GpuCrossEntropy, ForwardBackwardMatchCpuFp32) {
  MOE_REQUIRE_GPU();
  const int64_t N = 23, V = 5000;
  auto x = random_floats(N * V, 4, -10.0f, 10.0f), dls = random_floats(N, 5, 0.0f, 1.0f);
  auto t = random_ints(N, 6, 0, int32_t(V));
  auto dl0 = random_floats(N * V, 7, -1e-3f, 1e-3f);
  std::vector<float> losses(N), lse(N);
  auto rdl = dl0;
  ops::cross_entropy_forward(losses.data(), lse.data(), x.data(), t.data(), N, V);
  ops::cross_entropy_backward(rdl.data(), dls.data(), x.data(), lse.data(), t.data(), N, V);
  Dev<float> gx(x), gdls(dls), glosses(N), glse(N), gdl(dl0), gdl2(dl0);
  Dev<int32_t> gt(t);
  cuda::cross_entropy_forward(glosses.ptr, glse.ptr, gx.ptr, gt.ptr, N, V, stream());
  cuda::cross_entropy_backward(gdl.ptr, gdls.ptr, gx.ptr, glse.ptr, gt.ptr, N, V, stream());
  cuda::cross_entropy_backward(gdl2.ptr, gdls.ptr, gx.ptr, nullptr, gt.ptr, N, V, stream());  // lse recomputed
  EXPECT_LT(rel_err(glosses.host(), losses), kTolF32);
  EXPECT_LT(rel_err(glse.host(), lse), kTolF32);
  EXPECT_LT(rel_err(gdl.host(), rdl), kTolF32);
  EXPECT_LT(rel_err(gdl2.host(), rdl), kTolF32);
}

TEST(GpuCrossEntropy, Bf16LogitsMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t N = 17, V = 3000;
  auto x = bf16_round(random_floats(N * V, 8, -6.0f, 6.0f)), dls = random_floats(N, 9, 0.0f, 1.0f);
  auto t = random_ints(N, 10, 0, int32_t(V));
  std::vector<float> losses(N), lse(N), rdl(N * V, 0.0f);
  ops::cross_entropy_forward(losses.data(), lse.data(), x.data(), t.data(), N, V);
  ops::cross_entropy_backward(rdl.data(), dls.data(), x.data(), lse.data(), t.data(), N, V);
  Dev<bf16> bx(to_bf16(x)), bdl(N * V);
  Dev<float> gdls(dls), glosses(N), glse(N);
  Dev<int32_t> gt(t);
  cuda::cross_entropy_forward(glosses.ptr, glse.ptr, bx.ptr, gt.ptr, N, V, stream());
  cuda::cross_entropy_backward(bdl.ptr, gdls.ptr, bx.ptr, glse.ptr, gt.ptr, N, V, stream());
  EXPECT_LT(rel_err(glosses.host(), losses), kTolF32);  // fp32 math on the same bf16 inputs
  EXPECT_LT(rel_err(to_float(bdl.host()), rdl), kTolBf16);
}

TEST(GpuCrossEntropy, OutOfRangeTargetGivesNan) {
  MOE_REQUIRE_GPU();
  const int64_t N = 2, V = 10;
  auto x = random_floats(N * V, 11);
  Dev<float> gx(x), glosses(N);
  Dev<int32_t> gt(std::vector<int32_t>{3, 10});
  cuda::cross_entropy_forward(glosses.ptr, nullptr, gx.ptr, gt.ptr, N, V, stream());
  const auto l = glosses.host();
  EXPECT_FALSE(std::isnan(l[0]));
  EXPECT_TRUE(std::isnan(l[1]));
}

}  // namespace
}  // namespace moe::gpu_test
