// Elementwise, RMSNorm and RoPE kernels against their CPU twins.
#include <vector>

#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

TEST(GpuElementwise, AddAndScaleMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t n = 1000;
  auto a = random_floats(n, 1), b = random_floats(n, 2);
  auto ref = a;
  ops::add_inplace(ref.data(), b.data(), n);
  ops::scale_inplace(ref.data(), -1.7f, n);
  Dev<float> da(a), db(b);
  cuda::add_inplace(da.ptr, db.ptr, n, stream());
  cuda::scale_inplace(da.ptr, -1.7f, n, stream());
  EXPECT_LT(rel_err(da.host(), ref), kTolF32);
}

TEST(GpuElementwise, SwigluForwardBackwardMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t n = 3001;
  auto a = random_floats(n, 3, -6.0f, 6.0f), b = random_floats(n, 4), g = random_floats(n, 5);
  auto da0 = random_floats(n, 6), db0 = random_floats(n, 7);
  std::vector<float> out(n);
  auto rda = da0, rdb = db0;
  ops::swiglu_forward(out.data(), a.data(), b.data(), n);
  ops::swiglu_backward(rda.data(), rdb.data(), g.data(), a.data(), b.data(), n);
  Dev<float> ga(a), gb(b), gg(g), gout(n), gda(da0), gdb(db0);
  cuda::swiglu_forward(gout.ptr, ga.ptr, gb.ptr, n, stream());
  cuda::swiglu_backward(gda.ptr, gdb.ptr, gg.ptr, ga.ptr, gb.ptr, n, stream());
  EXPECT_LT(rel_err(gout.host(), out), kTolF32);
  EXPECT_LT(rel_err(gda.host(), rda), kTolF32);
  EXPECT_LT(rel_err(gdb.host(), rdb), kTolF32);
  // The overwriting form: the CPU's += on zeros, whatever the buffers held.
  std::vector<float> zda(n, 0.0f), zdb(n, 0.0f);
  ops::swiglu_backward(zda.data(), zdb.data(), g.data(), a.data(), b.data(), n);
  cuda::swiglu_backward(gda.ptr, gdb.ptr, gg.ptr, ga.ptr, gb.ptr, n, stream(), /*accumulate=*/false);
  EXPECT_LT(rel_err(gda.host(), zda), kTolF32);
  EXPECT_LT(rel_err(gdb.host(), zdb), kTolF32);
}

TEST(GpuElementwise, SwigluBf16MatchesCpu) {
  MOE_REQUIRE_GPU();
  const int64_t n = 2048;
  auto a = bf16_round(random_floats(n, 8, -4.0f, 4.0f)), b = bf16_round(random_floats(n, 9));
  auto g = bf16_round(random_floats(n, 10));
  std::vector<float> out(n), rda(n, 0.0f), rdb(n, 0.0f);
  ops::swiglu_forward(out.data(), a.data(), b.data(), n);
  ops::swiglu_backward(rda.data(), rdb.data(), g.data(), a.data(), b.data(), n);
  Dev<bf16> ba(to_bf16(a)), bb(to_bf16(b)), bg(to_bf16(g)), bout(n), bda(n), bdb(n);
  cuda::swiglu_forward(bout.ptr, ba.ptr, bb.ptr, n, stream());
  cuda::swiglu_backward(bda.ptr, bdb.ptr, bg.ptr, ba.ptr, bb.ptr, n, stream());
  EXPECT_LT(rel_err(to_float(bout.host()), out), kTolBf16);
  EXPECT_LT(rel_err(to_float(bda.host()), rda), kTolBf16);
  EXPECT_LT(rel_err(to_float(bdb.host()), rdb), kTolBf16);
  Dev<bf16> sda(to_bf16(random_floats(n, 30))), sdb(to_bf16(random_floats(n, 31)));  // overwritten
  cuda::swiglu_backward(sda.ptr, sdb.ptr, bg.ptr, ba.ptr, bb.ptr, n, stream(), /*accumulate=*/false);
  EXPECT_LT(rel_err(to_float(sda.host()), rda), kTolBf16);
  EXPECT_LT(rel_err(to_float(sdb.host()), rdb), kTolBf16);
}

// The 16-byte path, its scalar tail (n % 8 != 0), a misaligned start (the scalar kernel) and a
// null da: the same values as the CPU on every element.
TEST(GpuElementwise, SwigluBf16TailsMisalignmentAndNullGradient) {
  MOE_REQUIRE_GPU();
  const int64_t n = 2051;
  auto a = bf16_round(random_floats(n, 11, -4.0f, 4.0f)), b = bf16_round(random_floats(n, 12));
  auto g = bf16_round(random_floats(n, 13));
  for (int64_t off : {0, 1}) {
    const int64_t m = n - off;
    std::vector<float> out(m), rdb(m, 0.0f);
    ops::swiglu_forward(out.data(), a.data() + off, b.data() + off, m);
    ops::swiglu_backward(nullptr, rdb.data(), g.data() + off, a.data() + off, b.data() + off, m);
    Dev<bf16> ba(to_bf16(a)), bb(to_bf16(b)), bg(to_bf16(g)), bout(n), bdb(n);
    cuda::swiglu_forward(bout.ptr + off, ba.ptr + off, bb.ptr + off, m, stream());
    cuda::swiglu_backward(nullptr, bdb.ptr + off, bg.ptr + off, ba.ptr + off, bb.ptr + off, m, stream());
    const std::vector<float> got = to_float(bout.host()), gdb = to_float(bdb.host());
    EXPECT_LT(rel_err(std::vector<float>(got.begin() + off, got.end()), out), kTolBf16) << "offset " << off;
    EXPECT_LT(rel_err(std::vector<float>(gdb.begin() + off, gdb.end()), rdb), kTolBf16) << "offset " << off;
    if (off == 1) {
      EXPECT_EQ(got[0], 0.0f);  // nothing written before the start
    }
  }
}

TEST(GpuRmsnorm, ForwardBackwardMatchCpuFp32) {
  MOE_REQUIRE_GPU();
  const int64_t N = 1100, D = 96;  // N > one 512-row chunk of the weight gradient
  auto x = random_floats(N * D, 11), w = random_floats(D, 12, 0.5f, 1.5f), g = random_floats(N * D, 13);
  auto dx0 = random_floats(N * D, 14), dw0 = random_floats(D, 15);
  std::vector<float> out(N * D), rstd(N);
  auto rdx = dx0, rdw = dw0;
  ops::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, D, 1e-5f);
  ops::rmsnorm_backward(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), rstd.data(), N, D);
  Dev<float> gx(x), gw(w), gg(g), gout(N * D), grstd(N), gdx(dx0), gdw(dw0);
  cuda::rmsnorm_forward(gout.ptr, grstd.ptr, gx.ptr, gw.ptr, N, D, 1e-5f, stream());
  cuda::rmsnorm_backward(gdx.ptr, gdw.ptr, gg.ptr, gx.ptr, gw.ptr, grstd.ptr, N, D, stream());
  EXPECT_LT(rel_err(gout.host(), out), kTolF32);
  EXPECT_LT(rel_err(grstd.host(), rstd), kTolF32);
  EXPECT_LT(rel_err(gdx.host(), rdx), kTolF32);
  EXPECT_LT(rel_err(gdw.host(), rdw), kTolF32);
}

TEST(GpuRmsnorm, Bf16MatchesCpu) {
  MOE_REQUIRE_GPU();
  const int64_t N = 64, D = 200;
  auto x = bf16_round(random_floats(N * D, 16)), w = bf16_round(random_floats(D, 17, 0.5f, 1.5f));
  auto g = bf16_round(random_floats(N * D, 18));
  std::vector<float> out(N * D), rstd(N), rdx(N * D, 0.0f), rdw(D, 0.0f);
  ops::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, D, 1e-5f);
  ops::rmsnorm_backward(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), rstd.data(), N, D);
  Dev<bf16> bx(to_bf16(x)), bw(to_bf16(w)), bg(to_bf16(g)), bout(N * D), bdx(N * D), bdw(D);
  Dev<float> brstd(N);
  cuda::rmsnorm_forward(bout.ptr, brstd.ptr, bx.ptr, bw.ptr, N, D, 1e-5f, stream());
  cuda::rmsnorm_backward(bdx.ptr, bdw.ptr, bg.ptr, bx.ptr, bw.ptr, brstd.ptr, N, D, stream());
  EXPECT_LT(rel_err(to_float(bout.host()), out), kTolBf16);
  EXPECT_LT(rel_err(brstd.host(), rstd), kTolF32);  // rstd is computed from the same bf16 inputs in fp32
  EXPECT_LT(rel_err(to_float(bdx.host()), rdx), kTolBf16);
  EXPECT_LT(rel_err(to_float(bdw.host()), rdw), kTolBf16);
}

TEST(GpuRope, ForwardInPlaceAndBackwardMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t B = 2, T = 50, H = 3, hd = 16;
  const float theta = 10000.0f;
  auto x = random_floats(B * T * H * hd, 19), g = random_floats(B * T * H * hd, 20);
  auto dx0 = random_floats(B * T * H * hd, 21);
  std::vector<float> out(x.size());
  auto rdx = dx0;
  ops::rope_forward(out.data(), x.data(), B, T, H, hd, theta);
  ops::rope_backward(rdx.data(), g.data(), B, T, H, hd, theta);
  Dev<float> gx(x), gg(g), gdx(dx0);
  cuda::rope_forward(gx.ptr, gx.ptr, B, T, H, hd, theta, stream());  // in place
  cuda::rope_backward(gdx.ptr, gg.ptr, B, T, H, hd, theta, stream());
  EXPECT_LT(rel_err(gx.host(), out), kTolF32);
  EXPECT_LT(rel_err(gdx.host(), rdx), kTolF32);
}

}  // namespace
}  // namespace moe::gpu_test
