// Emulation stand-in for kernels/cuda/context.cuh: one emulated device, so MOE_REQUIRE_GPU runs,
// and one emulated cuBLAS handle (calls run on the host at once, so streams do not matter).
#pragma once
#include "cublasLt.h"
#include "cublas_v2.h"

namespace moe::cuda {
inline int device_count() { return 1; }

struct BlasContext {
  int device = 0;
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
inline BlasContext& blas_context(cudaStream_t) {
  static BlasContext c = [] {
    BlasContext b;
    cublasCreate(&b.blas);
    cublasLtCreate(&b.lt);
    return b;
  }();
  return c;
}
inline void release_blas_contexts() {}
}  // namespace moe::cuda
