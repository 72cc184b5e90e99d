// An fp32 GEMM for CPUs with AVX-512F (vfmadd231ps on zmm): packed panels, a 12 x 32 register block,
// k blocks of 256, OpenMP threads. The matmul ops' sgemm() wrapper (kernels/cpu/matmul.cpp) runs it
// in place of OpenBLAS where the CPU has AVX-512F; elsewhere they run cblas_sgemm.
#pragma once
#include <cstdint>

namespace moe::ops {

// Whether the CPU has AVX-512F (and the path is not switched off for a test or a benchmark).
bool gemm_f32_available();
void set_gemm_f32_enabled(bool on);

// C[M,N] = A B^T (C += A B^T when accumulate), with A[m][k] = a[m*a_rs + k*a_cs] and
// B[n][k] = b[n*b_rs + k*b_cs]; each operand has a unit stride in one of its two dimensions.
// Each element of C is summed by one thread in a fixed order (k in order within a block of 256,
// the blocks added to C in turn): the bits do not depend on the thread count.
void gemm_f32(float* C, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t b_rs,
              int64_t b_cs, int64_t M, int64_t N, int64_t K, bool accumulate);

}  // namespace moe::ops
