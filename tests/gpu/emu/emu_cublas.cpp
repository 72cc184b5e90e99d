// The cuBLAS stand-in of include/cublas_v2.h: column-major GEMMs on host memory.
#include <cstdint>

#include "cublas_v2.h"
#include "cuda_bf16.h"

struct EmuCublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

bool supported(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_16BF; }

float load(const void* p, cudaDataType_t t, int64_t i) {
  return t == CUDA_R_32F ? static_cast<const float*>(p)[i]
                         : __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}

void store(void* p, cudaDataType_t t, int64_t i, float v) {
  if (t == CUDA_R_32F) static_cast<float*>(p)[i] = v;
  else static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
}

// cuBLAS's argument checks (the ones a wrong call here would trip on the device too).
cublasStatus_t check(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, cudaDataType_t at, int lda,
                     cudaDataType_t bt, int ldb, cudaDataType_t ct, int ldc, cublasComputeType_t compute) {
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1))) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1))) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
  if (compute != CUBLAS_COMPUTE_32F || !supported(at) || !supported(bt) || !supported(ct) || at != bt)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}

// C = alpha op(A) op(B) + beta C, column-major; beta == 0 writes C without reading it.
void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void* A,
          cudaDataType_t at, int lda, const void* B, cudaDataType_t bt, int ldb, float beta, void* C,
          cudaDataType_t ct, int ldc) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        const float a = load(A, at, ta == CUBLAS_OP_N ? i + p * lda : p + i * int64_t(lda));
        const float b = load(B, bt, tb == CUBLAS_OP_N ? p + j * ldb : j + p * int64_t(ldb));
        acc += a * b;
      }
      const int64_t c = i + j * int64_t(ldc);
      store(C, ct, c, beta == 0.0f ? alpha * acc : alpha * acc + beta * load(C, ct, c));
    }
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new EmuCublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType_t at, int lda, const void* B,
                            cudaDataType_t bt, int ldb, const void* beta, void* C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (const cublasStatus_t s = check(ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc, compute)) return s;
  gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), A, at, lda, B, bt, ldb, *static_cast<const float*>(beta),
       C, ct, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType_t at, int lda,
                                          long long stride_a, const void* B, cudaDataType_t bt, int ldb,
                                          long long stride_b, const void* beta, void* C, cudaDataType_t ct, int ldc,
                                          long long stride_c, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (const cublasStatus_t s = check(ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc, compute)) return s;
  const size_t as = at == CUDA_R_32F ? 4 : 2, bs = bt == CUDA_R_32F ? 4 : 2, cs = ct == CUDA_R_32F ? 4 : 2;
  for (int64_t b = 0; b < batch; ++b)
    gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), static_cast<const char*>(A) + b * stride_a * as, at,
         lda, static_cast<const char*>(B) + b * stride_b * bs, bt, ldb, *static_cast<const float*>(beta),
         static_cast<char*>(C) + b * stride_c * cs, ct, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void* alpha, const void* const A[], cudaDataType_t at, int lda,
                                   const void* const B[], cudaDataType_t bt, int ldb, const void* beta,
                                   void* const C[], cudaDataType_t ct, int ldc, int batch,
                                   cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (const cublasStatus_t s = check(ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc, compute)) return s;
  for (int b = 0; b < batch; ++b)
    gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), A[b], at, lda, B[b], bt, ldb,
         *static_cast<const float*>(beta), C[b], ct, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmGroupedBatchedEx(cublasHandle_t h, const cublasOperation_t ta[], const cublasOperation_t tb[],
                                          const int m[], const int n[], const int k[], const void* alpha,
                                          const void* const A[], cudaDataType_t at, const int lda[],
                                          const void* const B[], cudaDataType_t bt, const int ldb[], const void* beta,
                                          void* const C[], cudaDataType_t ct, const int ldc[], int group_count,
                                          const int group_size[], cublasComputeType_t compute) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (group_count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  int64_t first = 0;
  for (int g = 0; g < group_count; ++g) {
    if (const cublasStatus_t s = check(ta[g], tb[g], m[g], n[g], k[g], at, lda[g], bt, ldb[g], ct, ldc[g], compute))
      return s;
    for (int i = 0; i < group_size[g]; ++i, ++first)
      gemm(ta[g], tb[g], m[g], n[g], k[g], static_cast<const float*>(alpha)[g], A[first], at, lda[g], B[first], bt,
           ldb[g], static_cast<const float*>(beta)[g], C[first], ct, ldc[g]);
  }
  return CUBLAS_STATUS_SUCCESS;
}
