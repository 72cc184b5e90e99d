// The device's GEMM throughput (the MFU reference of train.device cuda): the best of a few square
// cuBLAS GEMMs in bf16 or fp32 on nonzero operands, measured once.
#pragma once
#include <cuda_runtime.h>

namespace moe::gpu {

double gemm_peak_flops(bool bf16, cudaStream_t stream, int n = 4096);

}  // namespace moe::gpu
