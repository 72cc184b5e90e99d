// Dense and grouped (per-expert) GEMMs on cuBLAS, twins of kernels/cpu/matmul.cpp. Row-major,
// weights [out, in]; backward accumulates (+=), a null gradient pointer skips it. fp32 runs true
// fp32 (no TF32); bf16 stores bf16 and accumulates in fp32 (CUBLAS_COMPUTE_32F).
// `offsets` of the grouped ops is a HOST array of E + 1 row offsets (the group sizes must be known
// on the host to launch one cublasGemmGroupedBatchedEx for all experts).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t I, int64_t O,
                    bool accumulate, cudaStream_t stream);
void matmul_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* weight, int64_t N,
                    int64_t I, int64_t O, bool accumulate, cudaStream_t stream);

// accumulate_dinp false: dinp = dout W (not read: the first writer of a gradient needs no zeroing);
// dweight always accumulates.
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t I, int64_t O, cudaStream_t stream, bool accumulate_dinp = true);
void matmul_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweight, const __nv_bfloat16* dout,
                     const __nv_bfloat16* inp, const __nv_bfloat16* weight, int64_t N, int64_t I, int64_t O,
                     cudaStream_t stream, bool accumulate_dinp = true);

void grouped_matmul_forward(float* out, const float* inp, const float* weights, const int64_t* offsets,
                            int64_t E, int64_t I, int64_t O, cudaStream_t stream);
void grouped_matmul_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* weights,
                            const int64_t* offsets, int64_t E, int64_t I, int64_t O, cudaStream_t stream);

void grouped_matmul_backward(float* dinp, float* dweights, const float* dout, const float* inp,
                             const float* weights, const int64_t* offsets, int64_t E, int64_t I, int64_t O,
                             cudaStream_t stream);
void grouped_matmul_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweights, const __nv_bfloat16* dout,
                             const __nv_bfloat16* inp, const __nv_bfloat16* weights, const int64_t* offsets,
                             int64_t E, int64_t I, int64_t O, cudaStream_t stream);

// Blocked expert layout (moe/expert_padding.h): expert e owns rows [start[e], start[e + 1]) of the
// row buffers (inp, out, dout, dinp), a whole number of `block`-row blocks (none for an empty
// expert), its tokens first and zero rows after them (gather_rows writes zeros for row -1). The
// forward and input-gradient GEMMs are one batched cuBLAS call over all blocks (strided when every
// expert owns exactly one block); the weight gradient is one batched call per block index (over
// the experts that own that block), accumulated in fp32: cuBLAS runs these uniform GEMMs ~2.7x
// faster than cublasGemmGroupedBatchedEx on an H100 (docs/PERFORMANCE.md). The zero rows add
// nothing. `start` is a HOST array of E + 1 row offsets, multiples of block.
void blocked_matmul_forward(float* out, const float* inp, const float* weights, const int64_t* start, int64_t E,
                            int64_t block, int64_t I, int64_t O, cudaStream_t stream);
void blocked_matmul_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* weights,
                            const int64_t* start, int64_t E, int64_t block, int64_t I, int64_t O,
                            cudaStream_t stream);

// dinp += dout W per expert (= when accumulate_dinp is false: the first writer needs no zeroing);
// dW (E x O x I) += dout^T inp, into dweights32 (fp32) when it is not null, else into dweights
// (the compute type: one rounding per block, so meant for one block per expert); null pointers skip.
void blocked_matmul_backward(float* dinp, float* dweights, float* dweights32, const float* dout, const float* inp,
                             const float* weights, const int64_t* start, int64_t E, int64_t block, int64_t I,
                             int64_t O, cudaStream_t stream, bool accumulate_dinp = true);
void blocked_matmul_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweights, float* dweights32,
                             const __nv_bfloat16* dout, const __nv_bfloat16* inp, const __nv_bfloat16* weights,
                             const int64_t* start, int64_t E, int64_t block, int64_t I, int64_t O,
                             cudaStream_t stream, bool accumulate_dinp = true);

}  // namespace moe::cuda
