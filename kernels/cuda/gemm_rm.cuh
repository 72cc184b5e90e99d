// Row-major GEMM descriptions mapped onto column-major cuBLAS (internal to kernels/cuda).
// C[M,Ncol] = alpha * op(A)[M,K] op(B)[K,Ncol] + beta * C with row-major leading dimensions, like
// the CPU sgemm helper; cuBLAS computes C^T = op(B)^T op(A)^T, so A and B swap places.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace moe::cuda {

template <typename T>
struct CudaType;
template <>
struct CudaType<float> {
  static constexpr cudaDataType_t value = CUDA_R_32F;
};
template <>
struct CudaType<__nv_bfloat16> {
  static constexpr cudaDataType_t value = CUDA_R_16BF;
};

// One cublasGemmEx call in row-major terms; empty shapes are skipped (K == 0 with beta == 0
// zero-fills C through cuBLAS, which accepts k = 0).
template <typename T>
void gemm_rm(cublasHandle_t h, bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K, float alpha,
             const T* A, int64_t lda, const T* B, int64_t ldb, float beta, T* C, int64_t ldc);

// The same for `batch` problems whose matrices are given by device arrays of pointers.
template <typename T>
void gemm_rm_batched(cublasHandle_t h, bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K,
                     float alpha, const T* const* A, int64_t lda, const T* const* B, int64_t ldb, float beta,
                     T* const* C, int64_t ldc, int64_t batch);

// The same for `batch` problems at fixed element strides between consecutive A, B and C matrices
// (cublasGemmStridedBatchedEx: one launch; the blocked expert GEMMs of matmul.cuh). C may be fp32
// under bf16 A and B (TC = float).
template <typename T, typename TC = T>
void gemm_rm_strided(cublasHandle_t h, bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K, float alpha,
                     const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, float beta,
                     TC* C, int64_t ldc, int64_t stride_c, int64_t batch);

}  // namespace moe::cuda
