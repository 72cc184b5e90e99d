// router_stats and router_backward (kernels/cuda/router_grad.cuh) against host references in
// double: the statistics as plain sums, the logit gradient as central differences of the objective
// whose gradient it is, sum_n [sum_j dw[n, j] w[n, j] + sum_e aux[e] p[n, e] + zc / 2 lse[n]^2],
// w = scale p_sel / (norm ? sum p_sel : 1), p = softmax(logits), with the selection idx held fixed.
#include <cmath>
#include <vector>

#include "kernels/cuda/router_grad.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

struct Row {
  std::vector<double> p;
  double lse = 0;
};
Row softmax_row(const double* l, int64_t E) {
  Row r{std::vector<double>(size_t(E)), 0};
  double mx = l[0];
  for (int64_t e = 1; e < E; ++e) mx = std::max(mx, l[e]);
  double s = 0;
  for (int64_t e = 0; e < E; ++e) s += std::exp(l[e] - mx);
  r.lse = mx + std::log(s);
  for (int64_t e = 0; e < E; ++e) r.p[size_t(e)] = std::exp(l[e] - r.lse);
  return r;
}

struct Problem {
  int64_t N, E, k;
  bool norm;
  float scale, zc;
  std::vector<float> logits, dweights, aux;
  std::vector<int32_t> idx;  // k distinct experts per token (the router's top-k need not matter here)
};

double objective_row(const Problem& P, int64_t n, const double* l) {
  const Row r = softmax_row(l, P.E);
  double s = 0;
  for (int64_t j = 0; j < P.k; ++j) s += r.p[size_t(P.idx[size_t(n * P.k + j)])];
  double f = 0.5 * P.zc * r.lse * r.lse;
  for (int64_t j = 0; j < P.k; ++j) {
    const double w = P.scale * r.p[size_t(P.idx[size_t(n * P.k + j)])] / (P.norm ? s : 1.0);
    f += P.dweights[size_t(n * P.k + j)] * w;
  }
  for (int64_t e = 0; e < P.E; ++e) f += P.aux[size_t(e)] * r.p[size_t(e)];
  return f;
}

Problem make_problem(int64_t N, int64_t E, int64_t k, bool norm, uint64_t seed) {
  Problem P{N, E, k, norm, 1.5f, 0.02f, random_floats(N * E, seed, -2.0f, 2.0f), random_floats(N * k, seed + 1),
            random_floats(E, seed + 2, -0.1f, 0.1f), std::vector<int32_t>(size_t(N * k))};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < k; ++j) P.idx[size_t(n * k + j)] = int32_t((n * 7 + j * 3) % E);  // distinct: 3 j < E
  return P;
}

void check_backward(const Problem& P) {
  const auto dl0 = random_floats(P.N * P.E, 99);  // router_backward accumulates
  std::vector<float> probs(static_cast<size_t>(P.N * P.E)), lse(static_cast<size_t>(P.N));
  std::vector<float> want = dl0;
  double scale = 0;
  for (int64_t n = 0; n < P.N; ++n) {
    std::vector<double> l(P.logits.begin() + n * P.E, P.logits.begin() + (n + 1) * P.E);
    const Row r = softmax_row(l.data(), P.E);
    for (int64_t e = 0; e < P.E; ++e) probs[size_t(n * P.E + e)] = float(r.p[size_t(e)]);
    lse[size_t(n)] = float(r.lse);
    for (int64_t e = 0; e < P.E; ++e) {  // central differences, h small against |logits| <= 2
      const double h = 1e-5, keep = l[size_t(e)];
      l[size_t(e)] = keep + h;
      const double up = objective_row(P, n, l.data());
      l[size_t(e)] = keep - h;
      const double down = objective_row(P, n, l.data());
      l[size_t(e)] = keep;
      const double g = (up - down) / (2 * h);
      want[size_t(n * P.E + e)] += float(g);
      scale = std::max(scale, std::fabs(g));
    }
  }
  Dev<float> gdl(dl0), gp(probs), gdw(P.dweights), glse(lse), gaux(P.aux);
  Dev<int32_t> gidx(P.idx);
  cuda::router_backward(gdl.ptr, gp.ptr, gidx.ptr, gdw.ptr, glse.ptr, gaux.ptr, P.zc, P.N, P.E, P.k, P.norm, P.scale,
                        stream());
  const auto got = gdl.host();
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])));
  EXPECT_LT(worst / scale, 1e-4) << "E " << P.E << " k " << P.k << (P.norm ? " renormalised" : "");
}

TEST(GpuRouterGrad, BackwardIsTheGradientOfItsObjective) {
  MOE_REQUIRE_GPU();
  check_backward(make_problem(37, 8, 2, true, 1));
  check_backward(make_problem(37, 8, 2, false, 4));
  check_backward(make_problem(9, 40, 4, true, 7));  // E > 32: several experts per lane
}

TEST(GpuRouterGrad, StatsAreTheRowAndColumnSums) {
  MOE_REQUIRE_GPU();
  const int64_t N = 300, E = 5;
  const auto logits = random_floats(N * E, 11, -3.0f, 3.0f);
  std::vector<float> probs(size_t(N * E));
  std::vector<double> lse(static_cast<size_t>(N)), sums(static_cast<size_t>(E + 2), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const std::vector<double> l(logits.begin() + n * E, logits.begin() + (n + 1) * E);
    const Row r = softmax_row(l.data(), E);
    lse[size_t(n)] = r.lse;
    for (int64_t e = 0; e < E; ++e) probs[size_t(n * E + e)] = float(r.p[size_t(e)]);
  }
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t e = 0; e < E; ++e) {
      const double q = probs[size_t(n * E + e)];
      sums[size_t(e)] += q;
      if (q > 0) sums[size_t(E + 1)] -= q * std::log(q);
    }
    sums[size_t(E)] += double(float(lse[size_t(n)])) * float(lse[size_t(n)]);
  }
  Dev<float> gl(logits), gp(probs), glse(N);
  Dev<double> gsums(E + 2);
  cuda::router_stats(glse.ptr, gsums.ptr, gl.ptr, gp.ptr, N, E, stream());
  const auto got_lse = glse.host();
  const auto got = gsums.host();
  for (int64_t n = 0; n < N; ++n)
    EXPECT_NEAR(got_lse[size_t(n)], lse[size_t(n)], 1e-6 * (1 + std::fabs(lse[size_t(n)])));
  for (int64_t i = 0; i < E + 2; ++i)
    EXPECT_NEAR(got[size_t(i)], sums[size_t(i)], 1e-5 * (1 + std::fabs(sums[size_t(i)])));
}

}  // namespace
}  // namespace moe::gpu_test
