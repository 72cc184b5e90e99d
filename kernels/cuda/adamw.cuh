// Optimizer twins of kernels/cpu/adamw.cpp: fused AdamW (one kernel) and the sum of squares.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// AdamW with decoupled weight decay; `step` counts from 1 (bias corrections computed in double).
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t step, cudaStream_t stream);

// The same update in one pass with the gradient multiplied by grad_scale on the way in (global-norm
// clipping), the twin of ops::adamw_update_fused; `copy` (optional) receives the updated weights
// rounded to bf16 (the compute copy), so no separate scale or conversion pass reads them again.
void adamw_update_fused(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
                        __nv_bfloat16* copy, cudaStream_t stream);

// sum_i x_i^2 in double, deterministic (fixed grid, partials summed in block order). The first
// form synchronises `stream` and returns the value; the second leaves it in device memory.
double sum_squares(const float* x, int64_t n, cudaStream_t stream);
void sum_squares_async(double* out_device, const float* x, int64_t n, cudaStream_t stream);

}  // namespace moe::cuda
