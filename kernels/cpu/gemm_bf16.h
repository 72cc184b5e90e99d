// A bf16 GEMM with fp32 accumulation for CPUs with AVX-512 BF16 (vdpbf16ps): both operands are
// rounded to bf16 (round-to-nearest-even, kernels/cpu/half.h) while packing, every product of two
// bf16 values is exact in fp32, and the sums run in fp32: the numbers an sgemm of the rounded
// operands gives, up to fp32 summation order (and fp32-subnormal sums flushed to zero, which
// vdpbf16ps always does). On other CPUs the matmul ops run that sgemm instead.
#pragma once
#include <cstdint>

namespace moe::ops {

// Whether the CPU has AVX-512 BF16 (and the path is not switched off for a test).
bool gemm_bf16_available();
void set_gemm_bf16_enabled(bool on);  // tests: compare the two paths

// C[M,N] = A B^T (C += A B^T when accumulate), with A[m][k] = a[m*a_rs + k*a_cs] and
// B[n][k] = b[n*b_rs + k*b_cs]; each operand has a unit stride in one of its two dimensions.
// Each element of C is summed by one thread in a fixed order (blocks of 512 k added to C in turn):
// the bits do not depend on the thread count.
void gemm_bf16(float* C, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t b_rs,
               int64_t b_cs, int64_t M, int64_t N, int64_t K, bool accumulate);

// The same product on operands packed by the caller (kernels that reuse an operand, such as
// attention's keys and values), on the calling thread: A as bf16 rows [M][lda] (lda even, the
// entries from K on zero when K is odd), B as pairs along k [(K+1)/2][ldb][2] (B[p][n] = the
// values at k = 2p, 2p+1 of column n, the second zero past K; ldb >= N rounded up to 32).
void gemm_bf16_packed(float* C, int64_t ldc, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
                      int64_t M, int64_t N, int64_t K, bool accumulate);

}  // namespace moe::ops
