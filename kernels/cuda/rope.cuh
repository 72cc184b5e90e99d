// RoPE twins of kernels/cpu/rope.cpp (rotate-half; position = row % T). Angles and their cos/sin
// are computed in double on the device and cast to float, like the CPU table.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// out may alias inp.
void rope_forward(float* out, const float* inp, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                  float theta, cudaStream_t stream);
// dinp += R^T dout (= when accumulate is false; then dinp may alias dout: in place)
void rope_backward(float* dinp, const float* dout, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                   float theta, cudaStream_t stream, bool accumulate = true);
// One row x[n_heads * head_dim] at absolute position pos, in place (the decoder's new token;
// twin of src/model/kv_cache.h rope_at_position).
void rope_position_forward(float* x, int64_t pos, int64_t n_heads, int64_t head_dim, float theta,
                           cudaStream_t stream);
// bf16 storage, fp32 rotation (one rounding per element).
void rope_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, int64_t B, int64_t T, int64_t n_heads,
                  int64_t head_dim, float theta, cudaStream_t stream);
void rope_backward(__nv_bfloat16* dinp, const __nv_bfloat16* dout, int64_t B, int64_t T, int64_t n_heads,
                   int64_t head_dim, float theta, cudaStream_t stream, bool accumulate = true);

}  // namespace moe::cuda
