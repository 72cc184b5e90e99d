// Emulation stand-in for kernels/cuda/cuda_check.h (no cuBLAS, no NCCL).
#pragma once
#include <stdexcept>
#include <string>

#include "cuda_runtime.h"

#define MOE_CUDA_CHECK(call)                                                        \
  do {                                                                              \
    if ((call) != cudaSuccess) throw std::runtime_error(std::string(#call) + " failed"); \
  } while (0)
#define MOE_CUDA_CHECK_LAUNCH() \
  do {                          \
  } while (0)
#define MOE_CUDA_REQUIRE(cond, msg)                                                                       \
  do {                                                                                                    \
    if (!(cond)) throw std::runtime_error(std::string("check failed: " #cond ": ") + (msg));              \
  } while (0)
