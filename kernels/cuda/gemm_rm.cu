// cublasGemmEx / cublasGemmBatchedEx / cublasGemmStridedBatchedEx in row-major terms (see gemm_rm.cuh).
#include <climits>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_rm.cuh"

namespace moe::cuda {

namespace {

int as_int(int64_t v, const char* what) {
  MOE_CUDA_REQUIRE(v >= 0 && v <= INT_MAX, std::string(what) + " = " + std::to_string(v) + " exceeds int");
  return static_cast<int>(v);
}

inline int ld(int64_t v) { return as_int(v < 1 ? 1 : v, "leading dimension"); }

}  // namespace

template <typename T>
void gemm_rm(cublasHandle_t h, bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K, float alpha,
             const T* A, int64_t lda, const T* B, int64_t ldb, float beta, T* C, int64_t ldc) {
  if (M == 0 || Ncol == 0) return;
  const cudaDataType_t t = CudaType<T>::value;
  MOE_CUBLAS_CHECK(cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                as_int(Ncol, "n"), as_int(M, "m"), as_int(K, "k"), &alpha, B, t, ld(ldb), A, t,
                                ld(lda), &beta, C, t, ld(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <typename T>
void gemm_rm_batched(cublasHandle_t h, bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K,
                     float alpha, const T* const* A, int64_t lda, const T* const* B, int64_t ldb, float beta,
                     T* const* C, int64_t ldc, int64_t batch) {
  if (M == 0 || Ncol == 0 || batch == 0) return;
  const cudaDataType_t t = CudaType<T>::value;
  MOE_CUBLAS_CHECK(cublasGemmBatchedEx(
      h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(Ncol, "n"),
      as_int(M, "m"), as_int(K, "k"), &alpha, reinterpret_cast<const void* const*>(B), t, ld(ldb),
      reinterpret_cast<const void* const*>(A), t, ld(lda), &beta, reinterpret_cast<void* const*>(C), t, ld(ldc),
      as_int(batch, "batch"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <typename T, typename TC>
void gemm_rm_strided(cublasHandle_t h, bool trans_a, bool trans_b, int64_t M, int64_t Ncol, int64_t K, float alpha,
                     const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, float beta,
                     TC* C, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (M == 0 || Ncol == 0 || batch == 0) return;
  const cudaDataType_t t = CudaType<T>::value;
  MOE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(Ncol, "n"), as_int(M, "m"),
      as_int(K, "k"), &alpha, B, t, ld(ldb), stride_b, A, t, ld(lda), stride_a, &beta, C, CudaType<TC>::value,
      ld(ldc), stride_c, as_int(batch, "batch"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

#define MOE_INSTANTIATE(T)                                                                                  \
  template void gemm_rm<T>(cublasHandle_t, bool, bool, int64_t, int64_t, int64_t, float, const T*, int64_t, \
                           const T*, int64_t, float, T*, int64_t);                                          \
  template void gemm_rm_batched<T>(cublasHandle_t, bool, bool, int64_t, int64_t, int64_t, float,            \
                                   const T* const*, int64_t, const T* const*, int64_t, float, T* const*,    \
                                   int64_t, int64_t);                                                   \
  template void gemm_rm_strided<T>(cublasHandle_t, bool, bool, int64_t, int64_t, int64_t, float, const T*, int64_t, \
                                   int64_t, const T*, int64_t, int64_t, float, T*, int64_t, int64_t, int64_t);
MOE_INSTANTIATE(float)
MOE_INSTANTIATE(__nv_bfloat16)
#undef MOE_INSTANTIATE
template void gemm_rm_strided<__nv_bfloat16, float>(cublasHandle_t, bool, bool, int64_t, int64_t, int64_t, float,
                                                    const __nv_bfloat16*, int64_t, int64_t, const __nv_bfloat16*,
                                                    int64_t, int64_t, float, float*, int64_t, int64_t, int64_t);

}  // namespace moe::cuda
