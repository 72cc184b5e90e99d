// Library handles for the GEMM ops: one cuBLAS handle, one cuBLASLt handle and a workspace per
// (host thread, device), created on first use. Ops take a cudaStream_t like every other twin and
// bind it to the handle per call, so callers never pass handles around.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace moe::cuda {

struct BlasContext {
  int device = -1;
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;  // device memory handed to cuBLAS for split-K and friends
  size_t workspace_bytes = 0;
};

// The calling thread's context on the current device, with `stream` bound to the cuBLAS handle.
BlasContext& blas_context(cudaStream_t stream);

// Frees the calling thread's handles (all devices); the next blas_context() recreates them.
void release_blas_contexts();

// Number of CUDA devices; 0 when the driver or the device is missing (never throws).
int device_count();

}  // namespace moe::cuda
