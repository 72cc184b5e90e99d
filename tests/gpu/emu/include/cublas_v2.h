// Emulation stand-in for <cublas_v2.h> (see ../run.sh): the four GEMM entries kernels/cuda calls,
// column-major as cuBLAS defines them, on host memory (emu_cublas.cpp). Inputs are fp32 or bf16,
// the sum is fp32 in k order (cuBLAS's order inside a tile differs: tests hold GPU results to
// tolerances, not bits), beta == 0 never reads C, and a leading dimension below its matrix's rows
// is CUBLAS_STATUS_INVALID_VALUE, as on the device.
#pragma once
#include "cuda_runtime.h"

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0 };
struct EmuCublasContext;
using cublasHandle_t = EmuCublasContext*;

cublasStatus_t cublasCreate(cublasHandle_t* h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* workspace, size_t bytes);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType_t Atype, int lda, const void* B,
                            cudaDataType_t Btype, int ldb, const void* beta, void* C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                          int n, int k, const void* alpha, const void* A, cudaDataType_t Atype,
                                          int lda, long long stride_a, const void* B, cudaDataType_t Btype, int ldb,
                                          long long stride_b, const void* beta, void* C, cudaDataType_t Ctype, int ldc,
                                          long long stride_c, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                   int k, const void* alpha, const void* const A[], cudaDataType_t Atype, int lda,
                                   const void* const B[], cudaDataType_t Btype, int ldb, const void* beta,
                                   void* const C[], cudaDataType_t Ctype, int ldc, int batch,
                                   cublasComputeType_t compute, cublasGemmAlgo_t algo);
// Arrays per group (alpha_array and beta_array are host floats under CUBLAS_COMPUTE_32F); the
// matrices of all groups follow one another in A, B and C.
cublasStatus_t cublasGemmGroupedBatchedEx(cublasHandle_t h, const cublasOperation_t transa[],
                                          const cublasOperation_t transb[], const int m[], const int n[],
                                          const int k[], const void* alpha, const void* const A[],
                                          cudaDataType_t Atype, const int lda[], const void* const B[],
                                          cudaDataType_t Btype, const int ldb[], const void* beta, void* const C[],
                                          cudaDataType_t Ctype, const int ldc[], int group_count,
                                          const int group_size[], cublasComputeType_t compute);
