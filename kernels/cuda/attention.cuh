// Causal grouped-query attention twins of kernels/cpu/attention.cpp. q[B*T, H*hd], k/v[B*T, KV*hd],
// out[B*T, H*hd]; att[B, H, T, T] keeps the softmax probabilities (upper triangle zero) for backward.
// Head h reads kv head h / (H/KV). bf16 variants keep att in bf16 and accumulate in fp32.
// Backward allocates a [B, H, T, T] scratch (stream-ordered) for the score gradients.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B,
                       int64_t T, int64_t H, int64_t KV, int64_t hd, cudaStream_t stream);
void attention_forward(__nv_bfloat16* out, __nv_bfloat16* att, const __nv_bfloat16* q, const __nv_bfloat16* k,
                       const __nv_bfloat16* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd,
                       cudaStream_t stream);

// Accumulates into dq, dk, dv; a null pointer skips that gradient.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd,
                        cudaStream_t stream);
void attention_backward(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, const __nv_bfloat16* dout,
                        const __nv_bfloat16* att, const __nv_bfloat16* q, const __nv_bfloat16* k,
                        const __nv_bfloat16* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd,
                        cudaStream_t stream);

}  // namespace moe::cuda
