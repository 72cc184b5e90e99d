// gather_rows / scatter_add_rows / scatter_add_rows_backward against the CPU ops, in fp32 and bf16,
// for row widths that take every unit (16/8/4/2-byte gathers, the 4-wide and the scalar
// scatter-add), with buffers offset by one element (unaligned), and with padding rows (-1). Every
// buffer sits between guard bands, so a write outside it (a padding row taken as row -1, say)
// fails the test.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cuda/routing.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/guarded.h"

namespace moe::gpu_test {
namespace {

// T buffers offset by off_t elements, fp32 buffers by off_f.
template <typename T>
void check_rows(int64_t D, int64_t off_t, int64_t off_f, uint64_t seed) {
  const std::string what = std::string(std::is_same_v<T, float> ? "fp32" : "bf16") + " D " + std::to_string(D) +
                           " offsets " + std::to_string(off_t) + "/" + std::to_string(off_f);
  const int64_t N = 37, M = 150, pad = D + 8;
  auto rows = random_ints(M, seed, 0, int32_t(N));
  for (int64_t i = 3; i < M; i += 7) rows[size_t(i)] = -1;  // padding rows
  // Inputs in T (bf16-rounded for the reference), fp32 weights and gradients.
  const auto xt = from_floats<T>(random_floats(N * D, seed + 1)), yt = from_floats<T>(random_floats(M * D, seed + 2));
  const auto dyt = from_floats<T>(random_floats(M * D, seed + 3));
  const auto x = as_float(xt), y = as_float(yt), dy0 = as_float(dyt);
  const auto w = random_floats(M, seed + 4, 0.0f, 1.0f), out0 = random_floats(N * D, seed + 5);
  const auto g = random_floats(N * D, seed + 6), dw0 = random_floats(M, seed + 7);

  std::vector<float> gathered(M * D), out = out0, dy = dy0, dw = dw0;
  ops::gather_rows(gathered.data(), x.data(), rows.data(), M, D);
  ops::scatter_add_rows(out.data(), y.data(), rows.data(), w.data(), M, D);
  ops::scatter_add_rows_backward(dy.data(), dw.data(), g.data(), y.data(), rows.data(), w.data(), M, D);

  Dev<int32_t> grows(rows);
  Dev<float> gw(w);
  Guarded<T> gx(xt, pad, off_t), gy(yt, pad, off_t), gdy(dyt, pad, off_t);
  Guarded<T> ggath(std::vector<T>(size_t(M * D), from_floats<T>({3.0f})[0]), pad, off_t);
  Guarded<float> gout(out0, pad, off_f), gg(g, pad, off_f), gdw(dw0, pad, off_f);
  cuda::gather_rows(ggath.ptr(), gx.ptr(), grows.ptr, M, D, stream());
  cuda::scatter_add_rows(gout.ptr(), gy.ptr(), grows.ptr, gw.ptr, M, D, stream());
  cuda::scatter_add_rows_backward(gdy.ptr(), gdw.ptr(), gg.ptr(), gy.ptr(), grows.ptr, gw.ptr, M, D, stream());

  EXPECT_EQ(as_float(ggath.host()), gathered) << what;  // a copy: exact, zeros for padding
  EXPECT_LT(rel_err(gout.host(), out), kTolF32) << what;
  const auto hdy = as_float(gdy.host()), hdw = gdw.host();
  const double dinp_tol = std::is_same_v<T, float> ? kTolF32 : kTolBf16;  // bf16: one rounding apart
  EXPECT_LT(rel_err(hdy, as_float(from_floats<T>(dy))), dinp_tol) << what;
  EXPECT_LT(rel_err(hdw, dw), kTolF32) << what;
  int64_t touched = 0;  // padding rows keep dinp and dweights bit for bit
  for (int64_t i = 0; i < M; ++i) {
    if (rows[size_t(i)] >= 0) continue;
    touched += hdw[size_t(i)] != dw0[size_t(i)];
    for (int64_t j = 0; j < D; ++j) touched += hdy[size_t(i * D + j)] != dy0[size_t(i * D + j)];
  }
  EXPECT_EQ(touched, 0) << what;
  for (auto* ok : {&gx, &gy, &gdy, &ggath}) EXPECT_TRUE(ok->guards_intact()) << what;
  for (auto* ok : {&gout, &gg, &gdw}) EXPECT_TRUE(ok->guards_intact()) << what;
}

using Offsets = std::vector<std::pair<int64_t, int64_t>>;  // (T buffers, fp32 buffers) in elements

TEST(GpuGatherScatter, Fp32AlignedAndUnalignedWithPaddingRows) {
  MOE_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (int64_t D : {1, 6, 64, 70, 1024})
    for (auto [off_t, off_f] : Offsets{{0, 0}, {1, 1}, {1, 0}, {0, 1}}) check_rows<float>(D, off_t, off_f, seed += 10);
}

TEST(GpuGatherScatter, Bf16AlignedAndUnalignedWithPaddingRows) {
  MOE_REQUIRE_GPU();
  uint64_t seed = 2000;
  for (int64_t D : {1, 6, 64, 70, 1024})
    for (auto [off_t, off_f] : Offsets{{0, 0}, {1, 1}, {1, 0}, {0, 1}, {4, 0}})  // 4 bf16: 8-byte aligned
      check_rows<bf16>(D, off_t, off_f, seed += 10);
}

// Null dinp or dweights: each output alone equals its half of the joint call.
TEST(GpuGatherScatter, BackwardWithNullOutputs) {
  MOE_REQUIRE_GPU();
  for (int64_t D : {6, 64}) {
    const int64_t N = 9, M = 40;
    auto rows = random_ints(M, 3000 + uint64_t(D), -1, int32_t(N));
    auto g = random_floats(N * D, 3001), y = random_floats(M * D, 3002), w = random_floats(M, 3003);
    auto dy0 = random_floats(M * D, 3004), dw0 = random_floats(M, 3005);
    Dev<int32_t> grows(rows);
    Dev<float> gg(g), gy(y), gw(w), dy_both(dy0), dw_both(dw0), dy_only(dy0), dw_only(dw0);
    cuda::scatter_add_rows_backward(dy_both.ptr, dw_both.ptr, gg.ptr, gy.ptr, grows.ptr, gw.ptr, M, D, stream());
    cuda::scatter_add_rows_backward(dy_only.ptr, nullptr, gg.ptr, nullptr, grows.ptr, gw.ptr, M, D, stream());
    cuda::scatter_add_rows_backward(nullptr, dw_only.ptr, gg.ptr, gy.ptr, grows.ptr, gw.ptr, M, D, stream());
    EXPECT_EQ(dy_only.host(), dy_both.host()) << D;
    EXPECT_EQ(dw_only.host(), dw_both.host()) << D;
  }
}

}  // namespace
}  // namespace moe::gpu_test
