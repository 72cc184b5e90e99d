// Elementwise twins of kernels/cpu/elementwise.cpp. SwiGLU has a bf16 variant (fp32 math).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void add_inplace(float* a, const float* b, int64_t n, cudaStream_t stream);   // a += b
void scale_inplace(float* a, float s, int64_t n, cudaStream_t stream);        // a *= s

// out = silu(a) * b
void swiglu_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream);
void swiglu_forward(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t n,
                    cudaStream_t stream);
// da += dout * b * silu'(a); db += dout * silu(a); null pointers skip. accumulate = false writes
// `=` instead (the first writer of da and db: no zeroing, no read of them).
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b, int64_t n,
                     cudaStream_t stream, bool accumulate = true);
void swiglu_backward(__nv_bfloat16* da, __nv_bfloat16* db, const __nv_bfloat16* dout, const __nv_bfloat16* a,
                     const __nv_bfloat16* b, int64_t n, cudaStream_t stream, bool accumulate = true);

}  // namespace moe::cuda
