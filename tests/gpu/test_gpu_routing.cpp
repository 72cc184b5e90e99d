// Routing kernels: top-k, gather/scatter, embedding and the fused router against the CPU ops
// (the permutation: test_gpu_permute.cpp; the row ops' grid: test_gpu_gather_scatter.cpp).
#include <algorithm>
#include <vector>

#include "kernels/cuda/embedding.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/routing.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

TEST(GpuTopk, TiesGoToLowerIndexLikeCpu) {
  MOE_REQUIRE_GPU();
  const int64_t N = 3, C = 6, k = 3;
  const std::vector<float> s = {0.1f, 0.5f, 0.2f, 0.5f, 0.0f, 0.3f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f,
                                -1.f, -3.f, 4.0f, 2.0f, 4.0f, -0.5f};
  Dev<float> gs(s), gv(N * k);
  Dev<int32_t> gi(N * k);
  cuda::topk_forward(gi.ptr, gv.ptr, gs.ptr, N, C, k, stream());
  EXPECT_EQ(gi.host(), (std::vector<int32_t>{1, 3, 5, 0, 1, 2, 2, 4, 3}));
}

TEST(GpuTopk, RandomScoresMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t N = 200, C = 100, k = 7;  // C > 32: several experts per lane
  auto s = random_floats(N * C, 1);
  for (int64_t i = 0; i < N; i += 3) s[i * C + 50] = s[i * C + 7];  // ties
  std::vector<int32_t> idx(N * k);
  std::vector<float> vals(N * k);
  ops::topk_forward(idx.data(), vals.data(), s.data(), N, C, k);
  Dev<float> gs(s), gv(N * k);
  Dev<int32_t> gi(N * k);
  cuda::topk_forward(gi.ptr, gv.ptr, gs.ptr, N, C, k, stream());
  EXPECT_EQ(gi.host(), idx);
  EXPECT_EQ(gv.host(), vals);
}

TEST(GpuGatherScatter, MatchCpuWithRepeatedRows) {
  MOE_REQUIRE_GPU();
  const int64_t N = 10, M = 25, D = 70;
  auto x = random_floats(N * D, 2), y = random_floats(M * D, 3), w = random_floats(M, 4, 0.0f, 1.0f);
  auto base = random_floats(N * D, 5), g = random_floats(N * D, 6);
  auto rows = random_ints(M, 7, 0, int32_t(N));
  std::vector<float> gathered(M * D), dinp(M * D, 0.0f), dw(M, 0.0f);
  auto scattered = base;
  ops::gather_rows(gathered.data(), x.data(), rows.data(), M, D);
  ops::scatter_add_rows(scattered.data(), y.data(), rows.data(), w.data(), M, D);
  ops::scatter_add_rows_backward(dinp.data(), dw.data(), g.data(), y.data(), rows.data(), w.data(), M, D);
  Dev<float> gx(x), gy(y), gw(w), gout(M * D), gsc(base), gg(g), gdinp(M * D), gdw(M);
  Dev<int32_t> grows(rows);
  cuda::gather_rows(gout.ptr, gx.ptr, grows.ptr, M, D, stream());
  cuda::scatter_add_rows(gsc.ptr, gy.ptr, grows.ptr, gw.ptr, M, D, stream());
  cuda::scatter_add_rows_backward(gdinp.ptr, gdw.ptr, gg.ptr, gy.ptr, grows.ptr, gw.ptr, M, D, stream());
  EXPECT_EQ(gout.host(), gathered);
  EXPECT_LT(rel_err(gsc.host(), scattered), kTolF32);
  EXPECT_LT(rel_err(gdinp.host(), dinp), kTolF32);
  EXPECT_LT(rel_err(gdw.host(), dw), kTolF32);
}

TEST(GpuEmbedding, ForwardBackwardMatchCpu) {
  MOE_REQUIRE_GPU();
  const int64_t V = 50, N = 300, D = 40;
  auto table = random_floats(V * D, 8), g = random_floats(N * D, 9), dt0 = random_floats(V * D, 10);
  auto tok = random_ints(N, 11, 0, int32_t(V));
  std::vector<float> out(N * D);
  auto rdt = dt0;
  ops::embedding_forward(out.data(), tok.data(), table.data(), N, D);
  ops::embedding_backward(rdt.data(), g.data(), tok.data(), N, D);
  Dev<float> gtab(table), gg(g), gout(N * D), gdt(dt0);
  Dev<int32_t> gtok(tok);
  cuda::embedding_forward(gout.ptr, gtok.ptr, gtab.ptr, N, D, stream());
  cuda::embedding_backward(gdt.ptr, gg.ptr, gtok.ptr, N, D, stream());
  EXPECT_EQ(gout.host(), out);
  EXPECT_LT(rel_err(gdt.host(), rdt), kTolF32);
}

// CPU reference of the fused router: softmax, top-k of probs + bias, weights from the probs.
void cpu_router(std::vector<float>& probs, std::vector<int32_t>& idx, std::vector<float>& w,
                const std::vector<float>& logits, const std::vector<float>* bias, int64_t N, int64_t E, int64_t k,
                bool norm, float scale) {
  probs.resize(N * E);
  ops::softmax_forward(probs.data(), logits.data(), N, E);
  std::vector<float> sel = probs, vals(N * k);
  if (bias)
    for (int64_t t = 0; t < N; ++t)
      for (int64_t e = 0; e < E; ++e) sel[t * E + e] += (*bias)[e];
  idx.resize(N * k);
  w.resize(N * k);
  ops::topk_forward(idx.data(), vals.data(), sel.data(), N, E, k);
  for (int64_t t = 0; t < N; ++t) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) sum += (w[t * k + j] = probs[t * E + idx[t * k + j]]);
    for (int64_t j = 0; j < k; ++j) w[t * k + j] = (norm ? w[t * k + j] / sum : w[t * k + j]) * scale;
  }
}

void check_router(int64_t N, int64_t E, int64_t k, bool with_bias, bool norm, uint64_t seed) {
  auto logits = random_floats(N * E, seed, -3.0f, 3.0f), bias = random_floats(E, seed + 1, -0.05f, 0.05f);
  std::vector<float> probs, w;
  std::vector<int32_t> idx;
  cpu_router(probs, idx, w, logits, with_bias ? &bias : nullptr, N, E, k, norm, 1.5f);
  Dev<float> gl(logits), gb(bias), gp(N * E), gw(N * k);
  Dev<int32_t> gi(N * k);
  cuda::router_topk_forward(gp.ptr, gi.ptr, gw.ptr, gl.ptr, with_bias ? gb.ptr : nullptr, N, E, k, norm, 1.5f,
                            stream());
  EXPECT_LT(rel_err(gp.host(), probs), kTolF32);
  // GPU and CPU probabilities may differ in the last bit; a near-tie can then flip the choice.
  // Count mismatches instead of demanding equality: only such ties may differ.
  const auto gidx = gi.host();
  int64_t mismatched = 0;
  for (int64_t i = 0; i < N * k; ++i) mismatched += gidx[i] != idx[i];
  EXPECT_LE(mismatched, N * k / 500) << "E " << E << " k " << k;
  if (mismatched == 0) {
    EXPECT_LT(rel_err(gw.host(), w), kTolF32);
  }
}

TEST(GpuRouter, FusedKernelMatchesCpuComposition) {
  MOE_REQUIRE_GPU();
  check_router(1000, 8, 2, false, true, 12);  // E <= 32: one thread per token
  check_router(1000, 5, 5, true, false, 13);
  check_router(999, 32, 4, true, true, 15);
  check_router(1000, 64, 6, true, true, 14);  // one warp per token
  check_router(500, 160, 8, true, false, 16);  // E > 128: five experts per lane
}

}  // namespace
}  // namespace moe::gpu_test
