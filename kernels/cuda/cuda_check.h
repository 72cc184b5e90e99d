// One error header for the CUDA backend: an exception that carries file and line, and checked-call
// macros for the CUDA runtime, cuBLAS(Lt) and NCCL. A failed call is a bug or a broken device, not
// a user error, so it maps to exit code 1 like MOE_CHECK.
//
//   MOE_CUDA_CHECK(cudaMemcpyAsync(...));
//   kernel<<<grid, block, 0, stream>>>(...); MOE_CUDA_CHECK_LAUNCH();
//   MOE_CUBLAS_CHECK(cublasGemmEx(...));
//   MOE_NCCL_CHECK(ncclAllReduce(...));   // the caller includes <nccl.h>
#pragma once
#include <cublas_api.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace moe::cuda {

class CudaError : public std::runtime_error {
 public:
  CudaError(const char* file, int line, const std::string& what)
      : std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what) {}
};

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

}  // namespace moe::cuda

#define MOE_CUDA_CHECK(call)                                                                           \
  do {                                                                                                 \
    const cudaError_t moe_err_ = (call);                                                               \
    if (moe_err_ != cudaSuccess)                                                                       \
      throw ::moe::cuda::CudaError(__FILE__, __LINE__, std::string(#call) + ": " + cudaGetErrorName(moe_err_) + \
                                                           " (" + cudaGetErrorString(moe_err_) + ")");  \
  } while (0)

// After a kernel launch: reports bad launch configurations (not asynchronous faults).
#define MOE_CUDA_CHECK_LAUNCH() MOE_CUDA_CHECK(cudaGetLastError())

#define MOE_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                          \
    const cublasStatus_t moe_st_ = (call);                                                      \
    if (moe_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
      throw ::moe::cuda::CudaError(__FILE__, __LINE__,                                          \
                                   std::string(#call) + ": " + ::moe::cuda::cublas_status_name(moe_st_)); \
  } while (0)

// Expands only where used, so this header does not pull in <nccl.h>.
#define MOE_NCCL_CHECK(call)                                                                              \
  do {                                                                                                    \
    const ncclResult_t moe_nr_ = (call);                                                                  \
    if (moe_nr_ != ncclSuccess)                                                                           \
      throw ::moe::cuda::CudaError(__FILE__, __LINE__, std::string(#call) + ": " + ncclGetErrorString(moe_nr_)); \
  } while (0)

// Shape and argument invariants in the public entries (host side).
#define MOE_CUDA_REQUIRE(cond, msg)                                                                  \
  do {                                                                                               \
    if (!(cond)) throw ::moe::cuda::CudaError(__FILE__, __LINE__, std::string("check failed: " #cond ": ") + (msg)); \
  } while (0)
