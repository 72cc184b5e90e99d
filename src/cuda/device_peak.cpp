#include "src/cuda/device_peak.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/matmul.cuh"
#include "src/cuda/device_array.h"

namespace moe::gpu {

namespace {

template <typename T>
double peak(cudaStream_t s, int64_t n) {
  DeviceArray<T> a(n * n), b(n * n), c(n * n);
  // Bytes 0x3c: small finite nonzero values in bf16 and fp32 (all-zero operands run faster than data).
  MOE_CUDA_CHECK(cudaMemsetAsync(a.get(), 0x3c, size_t(a.bytes()), s));
  MOE_CUDA_CHECK(cudaMemsetAsync(b.get(), 0x3c, size_t(b.bytes()), s));
  double best = 0;
  for (int i = 0; i < 8; ++i) {  // best of the last five
    MOE_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto t0 = std::chrono::steady_clock::now();
    cuda::matmul_forward(c.get(), a.get(), b.get(), n, n, n, false, s);
    MOE_CUDA_CHECK(cudaStreamSynchronize(s));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 3) best = std::max(best, 2.0 * double(n) * n * n / secs);
  }
  return best;
}

}  // namespace

double gemm_peak_flops(bool bf16, cudaStream_t stream, int n) {
  return bf16 ? peak<__nv_bfloat16>(stream, n) : peak<float>(stream, n);
}

}  // namespace moe::gpu
