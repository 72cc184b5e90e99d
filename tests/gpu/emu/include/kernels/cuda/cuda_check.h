// Emulation stand-in for kernels/cuda/cuda_check.h: the same checks, on the stand-ins (NCCL's:
// the caller includes <nccl.h>, as with the real header).
#pragma once
#include <stdexcept>
#include <string>

#include "cublas_v2.h"
#include "cuda_runtime.h"

#define MOE_CUDA_CHECK(call)                                                        \
  do {                                                                              \
    if ((call) != cudaSuccess) throw std::runtime_error(std::string(#call) + " failed"); \
  } while (0)
#define MOE_CUDA_CHECK_LAUNCH() \
  do {                          \
  } while (0)
#define MOE_CUBLAS_CHECK(call)                                                                    \
  do {                                                                                            \
    const cublasStatus_t moe_st_ = (call);                                                        \
    if (moe_st_ != CUBLAS_STATUS_SUCCESS)                                                         \
      throw std::runtime_error(std::string(#call) + ": cuBLAS status " + std::to_string(int(moe_st_))); \
  } while (0)
#define MOE_CUDA_REQUIRE(cond, msg)                                                                       \
  do {                                                                                                    \
    if (!(cond)) throw std::runtime_error(std::string("check failed: " #cond ": ") + (msg));              \
  } while (0)
#define MOE_NCCL_CHECK(call)                                                                                  \
  do {                                                                                                        \
    const ncclResult_t moe_nr_ = (call);                                                                      \
    if (moe_nr_ != ncclSuccess) throw std::runtime_error(std::string(#call) + ": " + ncclGetErrorString(moe_nr_)); \
  } while (0)
