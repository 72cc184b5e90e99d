// Per-thread, per-device cuBLAS/cuBLASLt handles and workspace (see context.cuh).
#include <map>

#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_check.h"

namespace moe::cuda {

namespace {

// 32 MiB: what cuBLAS recommends on Hopper for its split-K and stream-K kernels.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

struct ThreadContexts {
  std::map<int, BlasContext> by_device;
  ~ThreadContexts() { release(); }
  void release() {
    for (auto& [dev, c] : by_device) {
      // Best effort at thread exit: the runtime may already be shutting down.
      if (cudaSetDevice(dev) != cudaSuccess) continue;
      if (c.blas) cublasDestroy(c.blas);
      if (c.lt) cublasLtDestroy(c.lt);
      if (c.workspace) cudaFree(c.workspace);
    }
    by_device.clear();
  }
};

thread_local ThreadContexts t_contexts;

}  // namespace

BlasContext& blas_context(cudaStream_t stream) {
  int dev = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&dev));
  BlasContext& c = t_contexts.by_device[dev];
  if (!c.blas) {
    c.device = dev;
    MOE_CUBLAS_CHECK(cublasCreate(&c.blas));
    MOE_CUBLAS_CHECK(cublasLtCreate(&c.lt));
    MOE_CUDA_CHECK(cudaMalloc(&c.workspace, kWorkspaceBytes));
    c.workspace_bytes = kWorkspaceBytes;
    MOE_CUBLAS_CHECK(cublasSetWorkspace(c.blas, c.workspace, c.workspace_bytes));
    // fp32 GEMMs stay true fp32 (no TF32): the GPU-vs-CPU tests hold them to 1e-5.
    MOE_CUBLAS_CHECK(cublasSetMathMode(c.blas, CUBLAS_DEFAULT_MATH));
  }
  MOE_CUBLAS_CHECK(cublasSetStream(c.blas, stream));
  return c;
}

void release_blas_contexts() { t_contexts.release(); }

}  // namespace moe::cuda
