// Dense and grouped (per-expert) GEMMs on OpenBLAS. Weights are [out, in] (Linear convention).
// Under a bf16/fp16 compute precision (kernels/precision.h) both operands are half values and the
// sums fp32: bf16 runs the AVX-512 BF16 kernel (gemm_bf16.h) where the CPU has it; otherwise the
// activation operands (inp, dout) are rounded here and sgemm multiplies them (weights come rounded).
#include <cblas.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/half.h"
#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

namespace {

// C[M,Ncol] = op(A)[M,K] op(B)[K,Ncol] + beta*C, guarding the empty shapes cblas rejects. Runs the
// AVX-512 fp32 kernel (gemm_f32.h) where the CPU has it and beta is 0 or 1 (every caller here).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || Ncol == 0) return;
  if (K == 0) {  // the product is empty: only the beta scaling remains
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < Ncol; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  if (gemm_f32_available() && (beta == 0.0f || beta == 1.0f))  // op(B)[k][n] as B^T[n][k]
    return gemm_f32(C, ldc, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, trans_b ? ldb : 1, trans_b ? 1 : ldb, M, Ncol,
                    K, beta == 1.0f);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(Ncol), static_cast<blasint>(K), 1.0f, A,
              static_cast<blasint>(std::max<int64_t>(lda, 1)), B, static_cast<blasint>(std::max<int64_t>(ldb, 1)),
              beta, C, static_cast<blasint>(std::max<int64_t>(ldc, 1)));
}

void check_offsets(const int64_t* offsets, int64_t E) {
  MOE_CHECK(offsets[0] == 0, "grouped_matmul: offsets[0] must be 0, got " + std::to_string(offsets[0]));
  for (int64_t e = 0; e < E; ++e)
    MOE_CHECK(offsets[e + 1] >= offsets[e], "grouped_matmul: offsets must be non-decreasing at expert " +
                                                std::to_string(e));
}

bool use_bf16_kernel() { return compute_precision() == Precision::bf16 && gemm_bf16_available(); }

// `x` rounded to the thread's compute precision in `buf` (x itself under fp32).
const float* rounded(const float* x, int64_t n, std::vector<float>& buf) {
  const Precision p = compute_precision();
  if (p == Precision::fp32) return x;
  buf.resize(size_t(n));
  half::round_to(buf.data(), x, n, p);
  return buf.data();
}

thread_local std::vector<float> t_inp, t_dout;

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t I, int64_t O,
                    bool accumulate) {
  if (use_bf16_kernel()) return gemm_bf16(out, O, inp, I, 1, weight, I, 1, N, O, I, accumulate);
  inp = rounded(inp, N * I, t_inp);
  sgemm(false, true, N, O, I, inp, I, weight, I, accumulate ? 1.0f : 0.0f, out, O);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t I, int64_t O) {
  if (use_bf16_kernel()) {
    if (dinp) gemm_bf16(dinp, I, dout, O, 1, weight, 1, I, N, I, O, true);      // dout @ weight
    if (dweight) gemm_bf16(dweight, I, dout, 1, O, inp, 1, I, O, I, N, true);  // dout^T @ inp
    return;
  }
  dout = rounded(dout, N * O, t_dout);
  if (dinp) sgemm(false, false, N, I, O, dout, O, weight, I, 1.0f, dinp, I);
  if (dweight) sgemm(true, false, O, I, N, dout, O, rounded(inp, N * I, t_inp), I, 1.0f, dweight, I);
}

void grouped_matmul_forward(float* out, const float* inp, const float* weights, const int64_t* offsets,
                            int64_t E, int64_t I, int64_t O) {
  check_offsets(offsets, E);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - offsets[e];
    if (rows == 0) continue;
    matmul_forward(out + r0 * O, inp + r0 * I, weights + e * O * I, rows, I, O);
  }
}

void grouped_matmul_backward(float* dinp, float* dweights, const float* dout, const float* inp,
                             const float* weights, const int64_t* offsets, int64_t E, int64_t I, int64_t O) {
  check_offsets(offsets, E);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - offsets[e];
    if (rows == 0) continue;
    matmul_backward(dinp ? dinp + r0 * I : nullptr, dweights ? dweights + e * O * I : nullptr, dout + r0 * O,
                    inp + r0 * I, weights + e * O * I, rows, I, O);
  }
}

}  // namespace moe::ops
