// The device step's traffic savers against the forms they replace, bit for bit where the
// arithmetic is the same: the mixed-precision RMSNorm (fp32 in, bf16 out) against the fp32 norm
// and a conversion; its bf16-gradient backward against widening first; the out-of-place residual
// add; RoPE's backward overwriting in place; cross-entropy's backward overwriting dlogits.
// Overwrite forms start their destinations as NaN to show that they are not read (matmul's:
// test_gpu_matmul.cpp; flash attention's: test_gpu_flash_attention.cpp). The CPU emulation runs
// this file (tests/gpu/emu/run.sh --rows).
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cuda/convert.cuh"
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/softmax_ce.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();


TEST(GpuFirstWriters, MixedRmsnormForwardIsTheFp32NormRounded) {
  MOE_REQUIRE_GPU();
  const int64_t N = 37, D = 300;
  auto x = random_floats(N * D, 1, -3.0f, 3.0f), w = random_floats(D, 2, 0.5f, 1.5f);
  Dev<float> gx(x), gw(w), out32(N * D), rstd(N), ref32(N * D), ref_rstd(N);
  Dev<bf16> out(N * D), ref(N * D), out_only(N * D);
  cuda::rmsnorm_forward(ref32.ptr, ref_rstd.ptr, gx.ptr, gw.ptr, N, D, 1e-5f, stream());
  cuda::convert(ref.ptr, ref32.ptr, N * D, stream());
  cuda::rmsnorm_forward(out.ptr, out32.ptr, rstd.ptr, gx.ptr, gw.ptr, N, D, 1e-5f, stream());
  cuda::rmsnorm_forward(out_only.ptr, nullptr, rstd.ptr, gx.ptr, gw.ptr, N, D, 1e-5f, stream());
  EXPECT_TRUE(same_bits(out32.host(), ref32.host()));
  EXPECT_TRUE(same_bits(rstd.host(), ref_rstd.host()));
  EXPECT_EQ(bits(out.host()), bits(ref.host()));
  EXPECT_EQ(bits(out_only.host()), bits(ref.host()));
}

TEST(GpuFirstWriters, MixedRmsnormBackwardIsTheFp32BackwardOfTheWidenedGradient) {
  MOE_REQUIRE_GPU();
  const int64_t N = 80, D = 96;  // (the weight gradient's row chunks: GpuRmsnorm.ForwardBackwardMatchCpuFp32)
  auto x = random_floats(N * D, 3), w = random_floats(D, 4, 0.5f, 1.5f), g = bf16_round(random_floats(N * D, 5));
  auto dx0 = random_floats(N * D, 6), dw0 = random_floats(D, 7);
  std::vector<float> rstd_h(N);
  Dev<float> gx(x), gw(w), g32(g), rstd(N), scratch(N * D);
  Dev<bf16> g16(to_bf16(g));
  cuda::rmsnorm_forward(scratch.ptr, rstd.ptr, gx.ptr, gw.ptr, N, D, 1e-5f, stream());
  // accumulate: dx0 + ..., dw0 + ...
  Dev<float> rdx(dx0), rdw(dw0), mdx(dx0), mdw(dw0);
  cuda::rmsnorm_backward(rdx.ptr, rdw.ptr, g32.ptr, gx.ptr, gw.ptr, rstd.ptr, N, D, stream());
  cuda::rmsnorm_backward(mdx.ptr, mdw.ptr, g16.ptr, gx.ptr, gw.ptr, rstd.ptr, N, D, stream());
  EXPECT_TRUE(same_bits(mdx.host(), rdx.host()));
  EXPECT_TRUE(same_bits(mdw.host(), rdw.host()));
  // overwrite: dx is not read (NaN stays out), and equals accumulating into zeros
  Dev<float> zdx(N * D), odx(std::vector<float>(size_t(N * D), kNaN)), dw_z(D), dw_o(D);
  cuda::rmsnorm_backward(zdx.ptr, dw_z.ptr, g32.ptr, gx.ptr, gw.ptr, rstd.ptr, N, D, stream());
  cuda::rmsnorm_backward(odx.ptr, dw_o.ptr, g16.ptr, gx.ptr, gw.ptr, rstd.ptr, N, D, stream(), false);
  EXPECT_TRUE(same_bits(odx.host(), zdx.host()));
  EXPECT_TRUE(same_bits(dw_o.host(), dw_z.host()));  // the weight gradient still accumulates (from 0)
  Dev<float> fdx(std::vector<float>(size_t(N * D), kNaN));
  cuda::rmsnorm_backward(fdx.ptr, nullptr, g32.ptr, gx.ptr, gw.ptr, rstd.ptr, N, D, stream(), false);
  EXPECT_TRUE(same_bits(fdx.host(), zdx.host()));
}

TEST(GpuFirstWriters, ResidualAddIsCopyThenAccumulate) {
  MOE_REQUIRE_GPU();
  const int64_t n = 5003;
  auto x = random_floats(n, 8), y = bf16_round(random_floats(n, 9));
  Dev<float> gx(x), ref(x), out(std::vector<float>(size_t(n), kNaN)), y32(y), out32(n);
  Dev<bf16> y16(to_bf16(y));
  cuda::accumulate(ref.ptr, y16.ptr, n, stream());
  cuda::residual_add(out.ptr, gx.ptr, y16.ptr, n, stream());
  cuda::residual_add(out32.ptr, gx.ptr, y32.ptr, n, stream());
  EXPECT_TRUE(same_bits(out.host(), ref.host()));
  EXPECT_TRUE(same_bits(out32.host(), ref.host()));
}

TEST(GpuFirstWriters, RopeBackwardOverwritesInPlace) {
  MOE_REQUIRE_GPU();
  const int64_t B = 2, T = 50, H = 3, hd = 16, n = B * T * H * hd;
  const float theta = 10000.0f;
  auto g = bf16_round(random_floats(n, 13));
  Dev<float> g32(g), zdx(n), in_place(g);
  cuda::rope_backward(zdx.ptr, g32.ptr, B, T, H, hd, theta, stream());
  cuda::rope_backward(in_place.ptr, in_place.ptr, B, T, H, hd, theta, stream(), false);
  EXPECT_TRUE(same_bits(in_place.host(), zdx.host()));
  Dev<bf16> g16(to_bf16(g)), z16(n), in_place16(to_bf16(g));
  cuda::rope_backward(z16.ptr, g16.ptr, B, T, H, hd, theta, stream());
  cuda::rope_backward(in_place16.ptr, in_place16.ptr, B, T, H, hd, theta, stream(), false);
  EXPECT_EQ(bits(in_place16.host()), bits(z16.host()));
}

TEST(GpuFirstWriters, CrossEntropyBackwardOverwriteEqualsAccumulatingIntoZeros) {
  MOE_REQUIRE_GPU();
  const int64_t N = 5, V = 300;
  auto logits = bf16_round(random_floats(N * V, 14, -4.0f, 4.0f));
  const std::vector<int32_t> targets = {0, 299, 17, 150, 42};
  const std::vector<float> dlosses = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  Dev<float> g32(logits), losses(N), lse(N), dl(dlosses);
  Dev<int32_t> t(targets);
  cuda::cross_entropy_forward(losses.ptr, lse.ptr, g32.ptr, t.ptr, N, V, stream());
  Dev<float> z32(N * V), o32(std::vector<float>(size_t(N * V), kNaN));
  cuda::cross_entropy_backward(z32.ptr, dl.ptr, g32.ptr, lse.ptr, t.ptr, N, V, stream());
  cuda::cross_entropy_backward(o32.ptr, dl.ptr, g32.ptr, lse.ptr, t.ptr, N, V, stream(), false);
  EXPECT_TRUE(same_bits(o32.host(), z32.host()));
  Dev<bf16> g16(to_bf16(logits)), z16(N * V), o16(to_bf16(std::vector<float>(size_t(N * V), kNaN)));
  cuda::cross_entropy_backward(z16.ptr, dl.ptr, g16.ptr, lse.ptr, t.ptr, N, V, stream());
  cuda::cross_entropy_backward(o16.ptr, dl.ptr, g16.ptr, lse.ptr, t.ptr, N, V, stream(), false);
  EXPECT_EQ(bits(o16.host()), bits(z16.host()));
}

}  // namespace
}  // namespace moe::gpu_test
