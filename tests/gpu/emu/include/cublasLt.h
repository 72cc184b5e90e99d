// Emulation stand-in for <cublasLt.h>: kernels/cuda only creates and destroys the handle.
#pragma once
#include "cublas_v2.h"

using cublasLtHandle_t = void*;
inline cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  static char handle;
  *h = &handle;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t) { return CUBLAS_STATUS_SUCCESS; }
