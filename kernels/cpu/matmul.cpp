// Dense and grouped (per-expert) GEMMs on OpenBLAS. Weights are [out, in] (Linear convention).
#include <cblas.h>

#include <algorithm>
#include <string>

#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

namespace {

// C[M,Ncol] = op(A)[M,K] op(B)[K,Ncol] + beta*C, guarding the empty shapes cblas rejects.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || Ncol == 0) return;
  if (K == 0) {  // the product is empty: only the beta scaling remains
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < Ncol; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
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

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t I, int64_t O,
                    bool accumulate) {
  sgemm(false, true, N, O, I, inp, I, weight, I, accumulate ? 1.0f : 0.0f, out, O);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t I, int64_t O) {
  if (dinp) sgemm(false, false, N, I, O, dout, O, weight, I, 1.0f, dinp, I);
  if (dweight) sgemm(true, false, O, I, N, dout, O, inp, I, 1.0f, dweight, I);
}

void grouped_matmul_forward(float* out, const float* inp, const float* weights, const int64_t* offsets,
                            int64_t E, int64_t I, int64_t O) {
  check_offsets(offsets, E);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - offsets[e];
    if (rows == 0) continue;
    sgemm(false, true, rows, O, I, inp + r0 * I, I, weights + e * O * I, I, 0.0f, out + r0 * O, O);
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
