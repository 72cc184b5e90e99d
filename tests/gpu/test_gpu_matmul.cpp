// cuBLAS GEMMs against the OpenBLAS twins: dense, grouped and padded, forward and backward, fp32 and bf16.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cuda/matmul.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

TEST(GpuMatmul, ForwardAndAccumulateMatchCpuFp32) {
  MOE_REQUIRE_GPU();
  const int64_t N = 37, I = 64, O = 48;
  auto x = random_floats(N * I, 1), w = random_floats(O * I, 2), init = random_floats(N * O, 3);
  for (bool acc : {false, true}) {
    std::vector<float> ref = init;
    ops::matmul_forward(ref.data(), x.data(), w.data(), N, I, O, acc);
    Dev<float> dx(x), dw(w), dout(init);
    cuda::matmul_forward(dout.ptr, dx.ptr, dw.ptr, N, I, O, acc, stream());
    EXPECT_LT(rel_err(dout.host(), ref), kTolF32) << "accumulate " << acc;
  }
}

TEST(GpuMatmul, BackwardMatchesCpuFp32) {
  MOE_REQUIRE_GPU();
  const int64_t N = 29, I = 40, O = 72;
  auto x = random_floats(N * I, 4), w = random_floats(O * I, 5), g = random_floats(N * O, 6);
  auto dx0 = random_floats(N * I, 7), dw0 = random_floats(O * I, 8);  // backward accumulates
  auto rdx = dx0, rdw = dw0;
  ops::matmul_backward(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), N, I, O);
  Dev<float> gx(x), gw(w), gg(g), gdx(dx0), gdw(dw0);
  cuda::matmul_backward(gdx.ptr, gdw.ptr, gg.ptr, gx.ptr, gw.ptr, N, I, O, stream());
  EXPECT_LT(rel_err(gdx.host(), rdx), kTolF32);
  EXPECT_LT(rel_err(gdw.host(), rdw), kTolF32);
  cuda::matmul_backward(nullptr, nullptr, gg.ptr, gx.ptr, gw.ptr, N, I, O, stream());  // skips both
  EXPECT_LT(rel_err(gdx.host(), rdx), kTolF32);
}

// accumulate_dinp = false (a first writer): dinp starts as NaN and is not read (cuBLAS beta = 0).
TEST(GpuMatmul, BackwardOverwriteIgnoresTheOldInputGradient) {
  MOE_REQUIRE_GPU();
  const int64_t N = 29, I = 40, O = 72;
  auto x = bf16_round(random_floats(N * I, 10)), w = bf16_round(random_floats(O * I, 11));
  auto g = bf16_round(random_floats(N * O, 12));
  {
    Dev<float> gx(x), gw(w), gg(g), zdx(N * I), odx(std::vector<float>(size_t(N * I), std::numeric_limits<float>::quiet_NaN())), dw(O * I);
    cuda::matmul_backward(zdx.ptr, nullptr, gg.ptr, gx.ptr, gw.ptr, N, I, O, stream());
    cuda::matmul_backward(odx.ptr, dw.ptr, gg.ptr, gx.ptr, gw.ptr, N, I, O, stream(), false);
    EXPECT_LT(rel_err(odx.host(), zdx.host()), kTolF32);
    std::vector<float> rdw(O * I, 0.0f);
    Dev<float> zdw(rdw);
    cuda::matmul_backward(nullptr, zdw.ptr, gg.ptr, gx.ptr, gw.ptr, N, I, O, stream());
    EXPECT_LT(rel_err(dw.host(), zdw.host()), kTolF32);  // dW as before
  }
  Dev<bf16> bx(to_bf16(x)), bw(to_bf16(w)), bg(to_bf16(g)), zdx(N * I), odx(to_bf16(std::vector<float>(N * I, std::numeric_limits<float>::quiet_NaN())));
  cuda::matmul_backward(zdx.ptr, nullptr, bg.ptr, bx.ptr, bw.ptr, N, I, O, stream());
  cuda::matmul_backward(odx.ptr, nullptr, bg.ptr, bx.ptr, bw.ptr, N, I, O, stream(), false);
  EXPECT_LT(rel_err(to_float(odx.host()), to_float(zdx.host())), kTolBf16);
}

TEST(GpuMatmul, Bf16MatchesCpuOnRoundedInputs) {
  MOE_REQUIRE_GPU();
  const int64_t N = 33, I = 96, O = 40;
  auto x = bf16_round(random_floats(N * I, 9)), w = bf16_round(random_floats(O * I, 10));
  auto g = bf16_round(random_floats(N * O, 11));
  std::vector<float> out(N * O), rdx(N * I, 0.0f), rdw(O * I, 0.0f);
  ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O);
  ops::matmul_backward(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), N, I, O);
  Dev<bf16> bx(to_bf16(x)), bw(to_bf16(w)), bg(to_bf16(g)), bout(N * O), bdx(N * I), bdw(O * I);
  cuda::matmul_forward(bout.ptr, bx.ptr, bw.ptr, N, I, O, false, stream());
  cuda::matmul_backward(bdx.ptr, bdw.ptr, bg.ptr, bx.ptr, bw.ptr, N, I, O, stream());
  EXPECT_LT(rel_err(to_float(bout.host()), out), kTolBf16);
  EXPECT_LT(rel_err(to_float(bdx.host()), rdx), kTolBf16);
  EXPECT_LT(rel_err(to_float(bdw.host()), rdw), kTolBf16);
}

// Uneven experts, one of them empty: one grouped GEMM must match the per-expert CPU loop.
struct GroupedCase {
  int64_t E = 5, I = 48, O = 32;
  std::vector<int64_t> offsets = {0, 7, 7, 30, 31, 52};
  int64_t M() const { return offsets.back(); }
};

TEST(GpuGroupedMatmul, ForwardAndBackwardMatchCpuFp32) {
  MOE_REQUIRE_GPU();
  GroupedCase c;
  const int64_t M = c.M(), E = c.E, I = c.I, O = c.O;
  auto x = random_floats(M * I, 12), w = random_floats(E * O * I, 13), g = random_floats(M * O, 14);
  auto dx0 = random_floats(M * I, 15), dw0 = random_floats(E * O * I, 16);
  std::vector<float> out(M * O);
  auto rdx = dx0, rdw = dw0;
  ops::grouped_matmul_forward(out.data(), x.data(), w.data(), c.offsets.data(), E, I, O);
  ops::grouped_matmul_backward(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), c.offsets.data(), E, I, O);
  Dev<float> gx(x), gw(w), gg(g), gout(M * O), gdx(dx0), gdw(dw0);
  cuda::grouped_matmul_forward(gout.ptr, gx.ptr, gw.ptr, c.offsets.data(), E, I, O, stream());
  cuda::grouped_matmul_backward(gdx.ptr, gdw.ptr, gg.ptr, gx.ptr, gw.ptr, c.offsets.data(), E, I, O, stream());
  EXPECT_LT(rel_err(gout.host(), out), kTolF32);
  EXPECT_LT(rel_err(gdx.host(), rdx), kTolF32);
  EXPECT_LT(rel_err(gdw.host(), rdw), kTolF32);  // the empty expert's slice must stay untouched
}

TEST(GpuGroupedMatmul, Bf16MatchesCpuOnRoundedInputs) {
  MOE_REQUIRE_GPU();
  GroupedCase c;
  const int64_t M = c.M(), E = c.E, I = c.I, O = c.O;
  auto x = bf16_round(random_floats(M * I, 17)), w = bf16_round(random_floats(E * O * I, 18));
  auto g = bf16_round(random_floats(M * O, 19));
  std::vector<float> out(M * O), rdx(M * I, 0.0f), rdw(E * O * I, 0.0f);
  ops::grouped_matmul_forward(out.data(), x.data(), w.data(), c.offsets.data(), E, I, O);
  ops::grouped_matmul_backward(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), c.offsets.data(), E, I, O);
  Dev<bf16> bx(to_bf16(x)), bw(to_bf16(w)), bg(to_bf16(g)), bout(M * O), bdx(M * I), bdw(E * O * I);
  cuda::grouped_matmul_forward(bout.ptr, bx.ptr, bw.ptr, c.offsets.data(), E, I, O, stream());
  cuda::grouped_matmul_backward(bdx.ptr, bdw.ptr, bg.ptr, bx.ptr, bw.ptr, c.offsets.data(), E, I, O, stream());
  EXPECT_LT(rel_err(to_float(bout.host()), out), kTolBf16);
  EXPECT_LT(rel_err(to_float(bdx.host()), rdx), kTolBf16);
  EXPECT_LT(rel_err(to_float(bdw.host()), rdw), kTolBf16);
}

// The blocked layout (expert e at rows [start[e], start[e + 1]), whole blocks, zero rows after its
// tokens) gives the compact layout's results on the real rows, zero output rows on the padding and
// the same weight gradients in fp32 (an empty expert included); fp32 and bf16, with one block per
// expert (the strided-batched call) and with several (batched calls, one per block index for dW).
template <typename T>
void check_blocked_matches_grouped(int64_t block, double tol) {
  GroupedCase c;  // counts 7, 0, 23, 1, 21
  const int64_t M = c.M(), E = c.E, I = c.I, O = c.O;
  // block 8: 1, 0, 3, 1 and 3 blocks; block 32: one block each, the empty expert's all zero rows.
  std::vector<int64_t> start(E + 1, 0);
  for (int64_t e = 0; e < E; ++e)
    start[e + 1] = start[e] + (block >= 23 ? block : (c.offsets[e + 1] - c.offsets[e] + block - 1) / block * block);
  const int64_t R = start[E];
  auto rnd = [](std::vector<float> v) { return std::is_same_v<T, bf16> ? bf16_round(std::move(v)) : v; };
  auto x = rnd(random_floats(M * I, 22)), w = rnd(random_floats(E * O * I, 23)), g = rnd(random_floats(M * O, 24));
  auto dw0 = random_floats(E * O * I, 25);
  std::vector<float> out(M * O), rdx(M * I, 0.0f), rdw = dw0;
  ops::grouped_matmul_forward(out.data(), x.data(), w.data(), c.offsets.data(), E, I, O);
  ops::grouped_matmul_backward(rdx.data(), rdw.data(), g.data(), x.data(), w.data(), c.offsets.data(), E, I, O);
  std::vector<float> px(R * I, 0.0f), pg(R * O, 0.0f);
  std::vector<int64_t> where(M);  // the blocked row of compact row r
  for (int64_t e = 0; e < E; ++e)
    for (int64_t r = c.offsets[e]; r < c.offsets[e + 1]; ++r) where[r] = start[e] + (r - c.offsets[e]);
  for (int64_t r = 0; r < M; ++r) {
    std::copy_n(x.begin() + r * I, I, px.begin() + where[r] * I);
    std::copy_n(g.begin() + r * O, O, pg.begin() + where[r] * O);
  }
  auto up = [](const std::vector<float>& v) {
    if constexpr (std::is_same_v<T, bf16>) return Dev<T>(to_bf16(v));
    else return Dev<T>(v);
  };
  auto down = [](const Dev<T>& d) {
    if constexpr (std::is_same_v<T, bf16>) return to_float(d.host());
    else return d.host();
  };
  Dev<T> gx = up(px), gw = up(w), gg = up(pg), gout(R * O), gdx(R * I), gdw_t = up(rnd(dw0));
  Dev<float> gdw(dw0);
  cuda::blocked_matmul_forward(gout.ptr, gx.ptr, gw.ptr, start.data(), E, block, I, O, stream());
  cuda::blocked_matmul_backward(gdx.ptr, nullptr, gdw.ptr, gg.ptr, gx.ptr, gw.ptr, start.data(), E, block, I, O,
                                stream());
  // The compute-type dW (no input gradient this time): the same sums, rounded to T.
  cuda::blocked_matmul_backward(nullptr, gdw_t.ptr, nullptr, gg.ptr, gx.ptr, gw.ptr, start.data(), E, block, I, O,
                                stream());
  // The overwriting form of the input gradient: the same values whatever dinp held.
  Dev<T> gdx_set = up(rnd(random_floats(R * I, 26)));
  cuda::blocked_matmul_backward(gdx_set.ptr, nullptr, nullptr, gg.ptr, gx.ptr, gw.ptr, start.data(), E, block, I, O,
                                stream(), /*accumulate_dinp=*/false);
  const std::vector<float> pdx_set = down(gdx_set);
  std::vector<float> dx_set_real(M * I);
  for (int64_t r = 0; r < M; ++r) std::copy_n(pdx_set.begin() + where[r] * I, I, dx_set_real.begin() + r * I);
  EXPECT_LT(rel_err(dx_set_real, rdx), tol) << "block " << block;
  std::vector<float> rdw_t = rnd(dw0);
  ops::grouped_matmul_backward(nullptr, rdw_t.data(), g.data(), x.data(), w.data(), c.offsets.data(), E, I, O);
  EXPECT_LT(rel_err(down(gdw_t), rdw_t), tol) << "block " << block;
  const std::vector<float> pout = down(gout), pdx = down(gdx);
  std::vector<float> out_real(M * O), dx_real(M * I);
  for (int64_t r = 0; r < M; ++r) {
    std::copy_n(pout.begin() + where[r] * O, O, out_real.begin() + r * O);
    std::copy_n(pdx.begin() + where[r] * I, I, dx_real.begin() + r * I);
  }
  EXPECT_LT(rel_err(out_real, out), tol) << "block " << block;
  EXPECT_LT(rel_err(dx_real, rdx), tol) << "block " << block;
  EXPECT_LT(rel_err(gdw.host(), rdw), tol) << "block " << block;  // the empty expert's slice stays dw0
  double pad_abs = 0;
  for (int64_t e = 0; e < E; ++e)
    for (int64_t r = start[e] + (c.offsets[e + 1] - c.offsets[e]); r < start[e + 1]; ++r)
      for (int64_t o = 0; o < O; ++o) pad_abs += std::fabs(pout[r * O + o]);
  EXPECT_EQ(pad_abs, 0.0) << "block " << block;
}

TEST(GpuBlockedMatmul, MatchesGroupedCpuFp32) {
  MOE_REQUIRE_GPU();
  for (int64_t block : {8, 32}) check_blocked_matches_grouped<float>(block, kTolF32);
}

TEST(GpuBlockedMatmul, MatchesGroupedCpuBf16) {
  MOE_REQUIRE_GPU();
  for (int64_t block : {8, 32}) check_blocked_matches_grouped<bf16>(block, kTolBf16);
}

// More experts than one pointer-filling chunk (128): exercises the chunked launch.
TEST(GpuGroupedMatmul, ManyExpertsMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t E = 300, I = 16, O = 8;
  std::vector<int64_t> offsets(E + 1, 0);
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + (e % 3);
  const int64_t M = offsets.back();
  auto x = random_floats(M * I, 20), w = random_floats(E * O * I, 21);
  std::vector<float> out(M * O);
  ops::grouped_matmul_forward(out.data(), x.data(), w.data(), offsets.data(), E, I, O);
  Dev<float> gx(x), gw(w), gout(M * O);
  cuda::grouped_matmul_forward(gout.ptr, gx.ptr, gw.ptr, offsets.data(), E, I, O, stream());
  EXPECT_LT(rel_err(gout.host(), out), kTolF32);
}

}  // namespace
}  // namespace moe::gpu_test
