// Routing helper twins of kernels/cpu/routing.cpp: top-k, row gather and weighted scatter-add.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// Per row: the k largest scores, descending; ties go to the lower index. One warp per row.
void topk_forward(int32_t* idx, float* vals, const float* scores, int64_t N, int64_t C, int64_t k,
                  cudaStream_t stream);
// out[i] = inp[rows[i]]
void gather_rows(float* out, const float* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream);
// out[rows[i]] += inp[i] * (weights ? weights[i] : 1); atomics: repeated rows add in any order.
void scatter_add_rows(float* out, const float* inp, const int32_t* rows, const float* weights, int64_t M,
                      int64_t D, cudaStream_t stream);
// dinp[i] += w[i] * dout[rows[i]]; dweights[i] += dot(dout[rows[i]], inp[i]); nulls skip.
void scatter_add_rows_backward(float* dinp, float* dweights, const float* dout, const float* inp,
                               const int32_t* rows, const float* weights, int64_t M, int64_t D,
                               cudaStream_t stream);

// Mixed precision: bf16 rows, fp32 residual stream and weights (the combine adds into fp32).
void gather_rows(__nv_bfloat16* out, const __nv_bfloat16* inp, const int32_t* rows, int64_t M, int64_t D,
                 cudaStream_t stream);
void scatter_add_rows(float* out, const __nv_bfloat16* inp, const int32_t* rows, const float* weights, int64_t M,
                      int64_t D, cudaStream_t stream);
void scatter_add_rows_backward(__nv_bfloat16* dinp, float* dweights, const float* dout, const __nv_bfloat16* inp,
                               const int32_t* rows, const float* weights, int64_t M, int64_t D, cudaStream_t stream);

}  // namespace moe::cuda
