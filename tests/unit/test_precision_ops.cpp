// The GEMM ops under a bf16/fp16 compute precision (kernels/precision.h): each equals the fp32 op
// run on operands rounded to the half type (weights rounded by the caller, as the trainer's copy
// is): bit for bit on the sgemm path, since both run the same fp32 GEMM on the same values; within
// fp32 summation-order error on the AVX-512 BF16 kernel (gemm_bf16.h). And rounding did happen.
#include <gtest/gtest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/half.h"
#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"

namespace moe {
namespace {

using test::random_floats;

std::vector<float> rounded(const std::vector<float>& x, Precision p) {
  std::vector<float> out(x.size());
  half::round_to(out.data(), x.data(), int64_t(x.size()), p);
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Sums of at most ~40 products of values below 1: fp32 reordering moves them by < 40 * 2^-24 * 40.
constexpr double kOrderTol = 1e-4;

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  return test::max_abs_diff(a.data(), b.data(), int64_t(a.size()));
}

// The sgemm path (rounded operands, bit-exact reference) unless the bf16 kernel is asked for.
class PathScope {
 public:
  explicit PathScope(bool kernel) { ops::set_gemm_bf16_enabled(kernel); }
  ~PathScope() { ops::set_gemm_bf16_enabled(true); }
};

class PrecisionOps : public ::testing::TestWithParam<Precision> {};

TEST_P(PrecisionOps, MatmulEqualsFp32OnRoundedOperands) {
  const Precision p = GetParam();
  const int64_t N = 37, I = 29, O = 19;
  auto x = random_floats(N * I, 1), w = rounded(random_floats(O * I, 2), p), g = random_floats(N * O, 3);
  std::vector<float> out(N * O), dx(N * I, 0.5f), dw(O * I, 0.25f);
  std::vector<float> kout(N * O), kdx(N * I, 0.5f), kdw(O * I, 0.25f);
  {
    const PrecisionScope scope(p);
    {
      const PathScope sgemm_path(false);
      ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O);
      ops::matmul_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), N, I, O);
    }
    ops::matmul_forward(kout.data(), x.data(), w.data(), N, I, O);  // the bf16 kernel where present
    ops::matmul_backward(kdx.data(), kdw.data(), g.data(), x.data(), w.data(), N, I, O);
  }
  const auto xr = rounded(x, p), gr = rounded(g, p);
  std::vector<float> ref(N * O), rdx(N * I, 0.5f), rdw(O * I, 0.25f), plain(N * O);
  ops::matmul_forward(ref.data(), xr.data(), w.data(), N, I, O);
  ops::matmul_backward(rdx.data(), rdw.data(), gr.data(), xr.data(), w.data(), N, I, O);
  EXPECT_TRUE(same_bits(out, ref));
  EXPECT_TRUE(same_bits(dx, rdx));
  EXPECT_TRUE(same_bits(dw, rdw));
  EXPECT_LT(max_diff(kout, ref), kOrderTol);
  EXPECT_LT(max_diff(kdx, rdx), kOrderTol);
  EXPECT_LT(max_diff(kdw, rdw), kOrderTol);
  ops::matmul_forward(plain.data(), x.data(), w.data(), N, I, O);
  EXPECT_FALSE(same_bits(out, plain)) << "the activation operand was not rounded";
  // And it stays an approximation of the fp32 product: relative error of the half type's order.
  const double tol = p == Precision::bf16 ? 2e-2 : 3e-3;
  EXPECT_LT(test::max_abs_diff(out.data(), plain.data(), N * O), tol * 4.0);
}

TEST_P(PrecisionOps, GroupedMatmulEqualsFp32OnRoundedOperands) {
  const Precision p = GetParam();
  const int64_t E = 3, I = 10, O = 7;
  const std::vector<int64_t> offsets = {0, 5, 5, 12};
  const int64_t M = offsets.back();
  auto x = random_floats(M * I, 4), w = rounded(random_floats(E * O * I, 5), p), g = random_floats(M * O, 6);
  std::vector<float> out(M * O), dx(M * I, 0.0f), dw(E * O * I, 0.0f);
  std::vector<float> kout(M * O), kdx(M * I, 0.0f), kdw(E * O * I, 0.0f);
  {
    const PrecisionScope scope(p);
    {
      const PathScope sgemm_path(false);
      ops::grouped_matmul_forward(out.data(), x.data(), w.data(), offsets.data(), E, I, O);
      ops::grouped_matmul_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), offsets.data(), E, I, O);
    }
    ops::grouped_matmul_forward(kout.data(), x.data(), w.data(), offsets.data(), E, I, O);
    ops::grouped_matmul_backward(kdx.data(), kdw.data(), g.data(), x.data(), w.data(), offsets.data(), E, I, O);
  }
  const auto xr = rounded(x, p), gr = rounded(g, p);
  std::vector<float> ref(M * O), rdx(M * I, 0.0f), rdw(E * O * I, 0.0f), plain(M * O);
  ops::grouped_matmul_forward(ref.data(), xr.data(), w.data(), offsets.data(), E, I, O);
  ops::grouped_matmul_backward(rdx.data(), rdw.data(), gr.data(), xr.data(), w.data(), offsets.data(), E, I, O);
  EXPECT_TRUE(same_bits(out, ref));
  EXPECT_TRUE(same_bits(dx, rdx));
  EXPECT_TRUE(same_bits(dw, rdw));
  EXPECT_LT(max_diff(kout, ref), kOrderTol);
  EXPECT_LT(max_diff(kdx, rdx), kOrderTol);
  EXPECT_LT(max_diff(kdw, rdw), kOrderTol);
  ops::grouped_matmul_forward(plain.data(), x.data(), w.data(), offsets.data(), E, I, O);
  EXPECT_FALSE(same_bits(out, plain));
}

TEST_P(PrecisionOps, AttentionEqualsFp32OnRoundedOperands) {
  const Precision p = GetParam();
  const int64_t B = 2, T = 70, H = 4, KV = 2, hd = 8;  // T > one query block of 64
  auto q = random_floats(B * T * H * hd, 7), k = random_floats(B * T * KV * hd, 8), v = random_floats(B * T * KV * hd, 9);
  auto g = random_floats(B * T * H * hd, 10);
  std::vector<float> out(q.size()), att(size_t(B * H * T * T)), dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
  std::vector<float> kout(out.size()), katt(att.size()), kdq(dq.size(), 0.0f), kdk(dk.size(), 0.0f), kdv(dv.size(), 0.0f);
  {
    const PrecisionScope scope(p);
    {
      const PathScope sgemm_path(false);
      ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, KV, hd);
      ops::attention_backward(dq.data(), dk.data(), dv.data(), g.data(), att.data(), q.data(), k.data(), v.data(), B,
                              T, H, KV, hd);
    }
    // bf16 on AVX-512 BF16: q k^T and dout v^T on the kernel (kernels/cpu/attention_bf16.h).
    ops::attention_forward(kout.data(), katt.data(), q.data(), k.data(), v.data(), B, T, H, KV, hd);
    ops::attention_backward(kdq.data(), kdk.data(), kdv.data(), g.data(), katt.data(), q.data(), k.data(), v.data(), B,
                            T, H, KV, hd);
  }
  const auto qr = rounded(q, p), kr = rounded(k, p), vr = rounded(v, p), gr = rounded(g, p);
  std::vector<float> ref(q.size()), ratt(att.size()), rdq(q.size(), 0.0f), rdk(k.size(), 0.0f), rdv(v.size(), 0.0f);
  ops::attention_forward(ref.data(), ratt.data(), qr.data(), kr.data(), vr.data(), B, T, H, KV, hd);
  ops::attention_backward(rdq.data(), rdk.data(), rdv.data(), gr.data(), ratt.data(), qr.data(), kr.data(), vr.data(),
                          B, T, H, KV, hd);
  EXPECT_TRUE(same_bits(out, ref));
  EXPECT_TRUE(same_bits(att, ratt));
  EXPECT_TRUE(same_bits(dq, rdq));
  EXPECT_TRUE(same_bits(dk, rdk));
  EXPECT_TRUE(same_bits(dv, rdv));
  EXPECT_LT(max_diff(kout, ref), kOrderTol);
  EXPECT_LT(max_diff(katt, ratt), kOrderTol);
  EXPECT_LT(max_diff(kdq, rdq), kOrderTol);
  EXPECT_LT(max_diff(kdk, rdk), kOrderTol);
  EXPECT_LT(max_diff(kdv, rdv), kOrderTol);
  if (p == Precision::bf16 && ops::gemm_bf16_available()) {
    EXPECT_FALSE(same_bits(katt, att)) << "the kernel path was not taken";
  }
  std::vector<float> plain(q.size());
  ops::attention_forward(plain.data(), ratt.data(), q.data(), k.data(), v.data(), B, T, H, KV, hd);
  EXPECT_FALSE(same_bits(out, plain));
}

INSTANTIATE_TEST_SUITE_P(HalfTypes, PrecisionOps, ::testing::Values(Precision::bf16, Precision::fp16),
                         [](const auto& info) { return std::string(precision_name(info.param)); });

// ref[m][n] = c0[m][n] + sum_k A[m][k] B[n][k], in double (A: M x K, B: N x K, row-major).
std::vector<double> reference_gemm(const std::vector<float>& c0, const std::vector<float>& a,
                                   const std::vector<float>& b, int64_t M, int64_t N, int64_t K) {
  std::vector<double> ref(size_t(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = c0[size_t(m * N + n)];
      for (int64_t k = 0; k < K; ++k) s += double(a[size_t(m * K + k)]) * b[size_t(n * K + k)];
      ref[size_t(m * N + n)] = s;
    }
  return ref;
}

// The kernel against sgemm of the rounded operands, in the three operand layouts the matmul ops
// use, shapes that are not multiples of the 8 x 32 block or of a k pair, with accumulation; and
// the same bits whatever the thread count.
TEST(GemmBf16, MatchesSgemmOfRoundedOperands) {
  if (!ops::gemm_bf16_available()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  const int64_t M = 13, N = 37, K = 33;
  auto a = random_floats(M * K, 11), b = random_floats(N * K, 12), c0 = random_floats(M * N, 13);
  const auto ar = rounded(a, Precision::bf16), br = rounded(b, Precision::bf16);
  const std::vector<double> ref = reference_gemm(c0, ar, br, M, N, K);
  // The same operands stored transposed: At[k][m], Bt[k][n].
  std::vector<float> at(a.size()), bt(b.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) at[size_t(k * M + m)] = a[size_t(m * K + k)];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) bt[size_t(k * N + n)] = b[size_t(n * K + k)];
  std::vector<float> c1 = c0, c2 = c0, c3 = c0;
  ops::gemm_bf16(c1.data(), N, a.data(), K, 1, b.data(), K, 1, M, N, K, true);    // forward layout
  ops::gemm_bf16(c2.data(), N, a.data(), K, 1, bt.data(), 1, N, M, N, K, true);   // dinp layout
  ops::gemm_bf16(c3.data(), N, at.data(), 1, M, bt.data(), 1, N, M, N, K, true);  // dweight layout
  EXPECT_LT(test::max_abs_diff(c1.data(), ref.data(), M * N), kOrderTol);
  EXPECT_TRUE(same_bits(c1, c2));
  EXPECT_TRUE(same_bits(c1, c3));
  std::vector<float> fresh(M * N, 7.0f);
  ops::gemm_bf16(fresh.data(), N, a.data(), K, 1, b.data(), K, 1, M, N, K, false);  // overwrite
  for (int64_t i = 0; i < M * N; ++i) EXPECT_NEAR(fresh[size_t(i)] + c0[size_t(i)], c1[size_t(i)], 1e-5);
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  const int64_t M2 = 300, N2 = 100, K2 = 64;
  auto a2 = random_floats(M2 * K2, 14), b2 = random_floats(N2 * K2, 15);
  std::vector<float> one(M2 * N2), many(M2 * N2);
  omp_set_num_threads(1);
  ops::gemm_bf16(one.data(), N2, a2.data(), K2, 1, b2.data(), K2, 1, M2, N2, K2, false);
  omp_set_num_threads(3);
  ops::gemm_bf16(many.data(), N2, a2.data(), K2, 1, b2.data(), K2, 1, M2, N2, K2, false);
  omp_set_num_threads(threads);
  EXPECT_TRUE(same_bits(one, many));
#endif
}

// k past the kernel's 512-long blocks (two full, one partial and odd), C accumulated, both A layouts.
TEST(GemmBf16, LongKInBlocks) {
  if (!ops::gemm_bf16_available()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  const int64_t M = 9, N = 40, K = 1203;
  auto a = random_floats(M * K, 21), b = random_floats(N * K, 22), c0 = random_floats(M * N, 23);
  const auto ar = rounded(a, Precision::bf16), br = rounded(b, Precision::bf16);
  const std::vector<double> ref = reference_gemm(c0, ar, br, M, N, K);
  std::vector<float> at(a.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) at[size_t(k * M + m)] = a[size_t(m * K + k)];
  std::vector<float> c1 = c0, c2 = c0;
  ops::gemm_bf16(c1.data(), N, a.data(), K, 1, b.data(), K, 1, M, N, K, true);
  ops::gemm_bf16(c2.data(), N, at.data(), 1, M, b.data(), K, 1, M, N, K, true);
  // Sums of ~1200 products below 1: fp32 rounding of the running sum stays below 1e-3.
  EXPECT_LT(test::max_abs_diff(c1.data(), ref.data(), M * N), 1e-3);
  EXPECT_TRUE(same_bits(c1, c2));
}

// The bf16 attention's kernel products are per task: the same bits for any thread count.
TEST(GemmBf16, AttentionSameBitsForAnyThreadCount) {
  if (!ops::gemm_bf16_available()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
#ifdef _OPENMP
  const int64_t B = 2, T = 130, H = 4, KV = 2, hd = 16;
  auto q = random_floats(B * T * H * hd, 17), k = random_floats(B * T * KV * hd, 18);
  auto v = random_floats(B * T * KV * hd, 19), g = random_floats(B * T * H * hd, 20);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    const PrecisionScope scope(Precision::bf16);
    std::vector<float> out(q.size()), att(size_t(B * H * T * T)), dq(q.size(), 0.0f), dk(k.size(), 0.0f),
        dv(v.size(), 0.0f);
    ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, KV, hd);
    ops::attention_backward(dq.data(), dk.data(), dv.data(), g.data(), att.data(), q.data(), k.data(), v.data(), B, T,
                            H, KV, hd);
    omp_set_num_threads(before);
    std::vector<float> all = out;
    for (const auto* x : {&att, &dq, &dk, &dv}) all.insert(all.end(), x->begin(), x->end());
    return all;
  };
  EXPECT_TRUE(same_bits(run(1), run(3)));
#endif
}

TEST(PrecisionScope, RestoresThePreviousModeAndScale) {
  EXPECT_EQ(compute_precision(), Precision::fp32);
  {
    const PrecisionScope a(Precision::fp16, 8.0);
    {
      const Fp32Scope b;
      EXPECT_EQ(compute_precision(), Precision::fp32);
      EXPECT_EQ(loss_scale(), 8.0);
    }
    EXPECT_EQ(compute_precision(), Precision::fp16);
  }
  EXPECT_EQ(compute_precision(), Precision::fp32);
  EXPECT_EQ(loss_scale(), 1.0);
}

}  // namespace
}  // namespace moe
