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

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t I, int64_t O, cudaStream_t stream);
void matmul_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweight, const __nv_bfloat16* dout,
                     const __nv_bfloat16* inp, const __nv_bfloat16* weight, int64_t N, int64_t I, int64_t O,
                     cudaStream_t stream);

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

// Padded expert layout: expert e owns rows [e * cap, (e + 1) * cap) of the row buffers (inp, out,
// dout, dinp) and its rows past its token count are zero (gather_rows writes zeros for row -1), so
// one cublasGemmStridedBatchedEx serves all experts. cuBLAS runs the experts' GEMMs there ~2.5x
// faster than through cublasGemmGroupedBatchedEx on an H100 (docs/PERFORMANCE.md), which pays for
// the padding whenever the load is near even. The zero rows add nothing to dweights.
void padded_matmul_forward(float* out, const float* inp, const float* weights, int64_t E, int64_t cap, int64_t I,
                           int64_t O, cudaStream_t stream);
void padded_matmul_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* weights, int64_t E,
                           int64_t cap, int64_t I, int64_t O, cudaStream_t stream);

void padded_matmul_backward(float* dinp, float* dweights, const float* dout, const float* inp, const float* weights,
                            int64_t E, int64_t cap, int64_t I, int64_t O, cudaStream_t stream);
void padded_matmul_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweights, const __nv_bfloat16* dout,
                            const __nv_bfloat16* inp, const __nv_bfloat16* weights, int64_t E, int64_t cap, int64_t I,
                            int64_t O, cudaStream_t stream);

}  // namespace moe::cuda
