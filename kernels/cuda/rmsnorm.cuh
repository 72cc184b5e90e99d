// RMSNorm twins of kernels/cpu/rmsnorm.cpp: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps)
// saved per row (fp32 in both precisions). bf16 variants store bf16 and compute in fp32/double.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t D,
                     float eps, cudaStream_t stream);
void rmsnorm_forward(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                     int64_t N, int64_t D, float eps, cudaStream_t stream);
// Mixed precision: the fp32 residual in, its bf16 rounding out (the GEMM input) and, where out32 is
// not null, the fp32 result too: one pass instead of an fp32 norm and a conversion (bit-identical).
void rmsnorm_forward(__nv_bfloat16* out, float* out32, float* rstd, const float* inp, const float* weight, int64_t N,
                     int64_t D, float eps, cudaStream_t stream);

// dinp += ... (= when accumulate is false: dinp is not read); dweight += ... (deterministic: fixed
// row chunks summed in order); nulls skip.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t D, cudaStream_t stream, bool accumulate = true);
// Mixed precision: a bf16 output gradient (the GEMMs' input gradient), fp32 everything else; the
// same result as widening dout first (widening is exact).
void rmsnorm_backward(float* dinp, float* dweight, const __nv_bfloat16* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t D, cudaStream_t stream, bool accumulate = true);
void rmsnorm_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweight, const __nv_bfloat16* dout,
                      const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* rstd, int64_t N,
                      int64_t D, cudaStream_t stream);

}  // namespace moe::cuda
