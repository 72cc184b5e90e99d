// Routing helper twins of kernels/cpu/routing.cpp: top-k, row gather and weighted scatter-add.
// The same row convention as kernels/ops.h (rows < 0 are padding).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// Per row: the k largest scores, descending; ties go to the lower index. One warp per row.
void topk_forward(int32_t* idx, float* vals, const float* scores, int64_t N, int64_t C, int64_t k,
                  cudaStream_t stream);
// The row ops (gather_scatter.cu): 16-byte vector loads/stores where rows and pointers allow,
// a group of up to 32 lanes per row. A row index < 0 marks a padding row (padded expert layouts):
// gather_rows writes a zero row there, scatter_add_rows skips it, scatter_add_rows_backward leaves
// dinp[i] and dweights[i] unchanged.
// out[i] = inp[rows[i]] (zeros where rows[i] < 0)
void gather_rows(float* out, const float* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream);
// out[rows[i]] += inp[i] * (weights ? weights[i] : 1) for rows[i] >= 0; atomics: repeated rows add
// in any order.
void scatter_add_rows(float* out, const float* inp, const int32_t* rows, const float* weights, int64_t M,
                      int64_t D, cudaStream_t stream);
// For rows[i] >= 0: dinp[i] += w[i] * dout[rows[i]]; dweights[i] += dot(dout[rows[i]], inp[i]);
// nulls skip.
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
