// Precision conversions for the mixed-precision device step: fp32 <-> bf16 copies (round to
// nearest even, like kernels/cpu/half.h) and bf16 gradients accumulated into fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void convert(__nv_bfloat16* out, const float* inp, int64_t n, cudaStream_t stream);  // round
void convert(float* out, const __nv_bfloat16* inp, int64_t n, cudaStream_t stream);  // widen
// out += float(inp)
void accumulate(float* out, const __nv_bfloat16* inp, int64_t n, cudaStream_t stream);
void accumulate(float* out, const float* inp, int64_t n, cudaStream_t stream);
// out = x + float(y), out-of-place (the residual add of a block whose input stays saved); out may
// alias x.
void residual_add(float* out, const float* x, const __nv_bfloat16* y, int64_t n, cudaStream_t stream);
void residual_add(float* out, const float* x, const float* y, int64_t n, cudaStream_t stream);
void fill(float* x, float value, int64_t n, cudaStream_t stream);
// Sum of x (fp32) into *out_device in double, deterministic (one block, fixed order).
void sum_async(double* out_device, const float* x, int64_t n, cudaStream_t stream);

}  // namespace moe::cuda
