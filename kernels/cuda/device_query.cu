// Is there a usable device: for tests/gpu (which skip without one) and the CLI.
#include <cuda_runtime.h>

#include "kernels/cuda/context.cuh"

namespace moe::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

}  // namespace moe::cuda
