// Model FLOPs (for MFU) and the machine's measured peak (fp32 GEMM throughput).
#pragma once
#include <cstdint>

#include "src/train/config.h"

namespace moe {

// Training FLOPs per token: 3 x forward (forward + backward), forward = 2 x active matmul
// parameters + causal attention scores and values (2 * T * H * hd per layer, halved by the mask
// then doubled for the two matmuls).
double train_flops_per_token(const Config& c);
// Active (per-token) and total parameter counts.
int64_t active_params(const Config& c);
int64_t total_params(const Config& c);
// Best of a few fp32 GEMM runs at size n (C = A B^T), in FLOP/s, with the current thread settings:
// OpenBLAS or the AVX-512 kernel (kernels/cpu/gemm_f32.h), whichever is faster.
double measure_sgemm_peak(int64_t n = 1024, int repeats = 3);

}  // namespace moe
