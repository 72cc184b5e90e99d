// The AVX-512 fp32 GEMM (kernels/cpu/gemm_f32.h) against a double-precision reference on shapes
// that are not multiples of its blocking (12 x 32 register block, 96-row chunks, 256-deep k
// blocks), in the four operand layouts, overwriting and accumulating, with leading dimensions
// wider than the matrices; the same bits for one and two threads; and the matmul ops on it
// against the same ops on OpenBLAS.
#include <gtest/gtest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm_f32.h"
#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

using test::random_floats;

struct Shape {
  int64_t M, N, K;
};

// Per element, the exact value (double) and the rigorous bound on an fp32 sum of K products in any
// order, (K + 1) * 2^-24 * (sum |a_k b_k| + |c|) (u = 2^-24, one more rounding for the add to C).
struct Reference {
  std::vector<double> value, bound;
};

// C (+)= A B^T, A[m][k] = a[m*a_rs + k*a_cs], B[n][k] = b[n*b_rs + k*b_cs].
Reference reference(const std::vector<float>& c0, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs,
                    const float* b, int64_t b_rs, int64_t b_cs, Shape s, bool accumulate) {
  Reference r{std::vector<double>(c0.begin(), c0.end()), std::vector<double>(c0.size(), 0.0)};
  for (int64_t m = 0; m < s.M; ++m)
    for (int64_t n = 0; n < s.N; ++n) {
      const size_t i = size_t(m * ldc + n);
      double sum = accumulate ? r.value[i] : 0.0, abs = std::abs(sum);
      for (int64_t k = 0; k < s.K; ++k) {
        const double p = double(a[m * a_rs + k * a_cs]) * double(b[n * b_rs + k * b_cs]);
        sum += p;
        abs += std::abs(p);
      }
      r.value[i] = sum;
      r.bound[i] = double(s.K + 1) * std::ldexp(abs, -24);
    }
  return r;
}

class GemmF32 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ops::gemm_f32_available()) GTEST_SKIP() << "no AVX-512F on this CPU";
  }
};

TEST_F(GemmF32, MatchesDoubleReferenceOnOddShapesAndLayouts) {
  const Shape shapes[] = {{1, 1, 1},   {1, 37, 5},   {13, 1, 9},   {12, 32, 256}, {25, 33, 257},
                          {97, 65, 3}, {11, 31, 600}, {100, 70, 513}, {2, 3, 1}};
  uint64_t seed = 1;
  for (const Shape s : shapes)
    for (int layout = 0; layout < 4; ++layout)
      for (bool accumulate : {false, true}) {
        const bool a_rows = layout & 1, b_rows = layout & 2;  // unit stride along k?
        const int64_t pad = 3;  // leading dimensions wider than the matrices
        const int64_t lda = (a_rows ? s.K : s.M) + pad, ldb = (b_rows ? s.K : s.N) + pad, ldc = s.N + pad;
        auto a = random_floats((a_rows ? s.M : s.K) * lda, seed++);
        auto b = random_floats((b_rows ? s.N : s.K) * ldb, seed++), c = random_floats(s.M * ldc, seed++);
        const int64_t a_rs = a_rows ? lda : 1, a_cs = a_rows ? 1 : lda;
        const int64_t b_rs = b_rows ? ldb : 1, b_cs = b_rows ? 1 : ldb;
        const auto want = reference(c, ldc, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, s, accumulate);
        ops::gemm_f32(c.data(), ldc, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, s.M, s.N, s.K, accumulate);
        int64_t outside = 0, pad_moved = 0;
        for (int64_t m = 0; m < s.M; ++m)
          for (int64_t j = 0; j < ldc; ++j) {
            const size_t i = size_t(m * ldc + j);
            const double d = std::abs(double(c[i]) - want.value[i]);
            if (j < s.N) outside += d > want.bound[i];
            else pad_moved += d != 0.0;
          }
        EXPECT_EQ(outside, 0) << s.M << "x" << s.N << "x" << s.K << " layout " << layout << " acc " << accumulate;
        EXPECT_EQ(pad_moved, 0) << "wrote past N at " << s.M << "x" << s.N << "x" << s.K;
      }
}

TEST_F(GemmF32, EmptyProductOverwritesOrKeeps) {
  std::vector<float> c(6, 2.0f), a(1), b(1);
  ops::gemm_f32(c.data(), 3, a.data(), 1, 1, b.data(), 1, 1, 2, 3, 0, true);
  EXPECT_EQ(c, std::vector<float>(6, 2.0f));
  ops::gemm_f32(c.data(), 3, a.data(), 1, 1, b.data(), 1, 1, 2, 3, 0, false);
  EXPECT_EQ(c, std::vector<float>(6, 0.0f));
}

#ifdef _OPENMP
TEST_F(GemmF32, SameBitsForOneAndTwoThreads) {
  const int64_t M = 200, N = 130, K = 700;  // above the threading cutoff; several chunks, panels, k blocks
  auto a = random_floats(M * K, 11), b = random_floats(N * K, 12);
  const int saved = omp_get_max_threads();
  std::vector<float> one(M * N, 0.5f), two(M * N, 0.5f);
  omp_set_num_threads(1);
  ops::gemm_f32(one.data(), N, a.data(), K, 1, b.data(), 1, N, M, N, K, true);
  omp_set_num_threads(2);
  ops::gemm_f32(two.data(), N, a.data(), K, 1, b.data(), 1, N, M, N, K, true);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
}
#endif

// The three products the matmul ops run (A B^T, A B, A^T B) on the kernel and on OpenBLAS.
TEST_F(GemmF32, MatmulOpsAgreeWithOpenBlas) {
  const int64_t N = 45, I = 300, O = 70;
  auto x = random_floats(N * I, 21), w = random_floats(O * I, 22), g = random_floats(N * O, 23);
  std::vector<float> out[2], dx[2], dw[2];
  for (int path = 0; path < 2; ++path) {
    ops::set_gemm_f32_enabled(path == 0);
    out[path].assign(N * O, 0.0f);
    dx[path].assign(N * I, 0.5f);
    dw[path].assign(O * I, 0.25f);
    ops::matmul_forward(out[path].data(), x.data(), w.data(), N, I, O);
    ops::matmul_backward(dx[path].data(), dw[path].data(), g.data(), x.data(), w.data(), N, I, O);
  }
  ops::set_gemm_f32_enabled(true);
  auto diff = [](const std::vector<float>& p, const std::vector<float>& q) {
    return test::max_abs_diff(p.data(), q.data(), int64_t(p.size()));
  };
  // Both within (K + 1) 2^-24 sum |a b| of the exact value; values in [-1, 1) and the accumulated
  // start below 1 bound sum |a b| + |c| by K + 1, so the two paths differ by at most 2 (K + 1)^2 2^-24.
  auto tol = [](int64_t K) { return 2.0 * double(K + 1) * double(K + 1) * std::ldexp(1.0, -24); };
  EXPECT_LE(diff(out[0], out[1]), tol(I));
  EXPECT_LE(diff(dx[0], dx[1]), tol(O));
  EXPECT_LE(diff(dw[0], dw[1]), tol(N));
  EXPECT_GT(diff(out[0], out[1]) + diff(dw[0], dw[1]), 0.0) << "both paths ran the same code";
}

}  // namespace
}  // namespace moe
