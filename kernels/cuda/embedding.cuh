// Token embedding twins of kernels/cpu/embedding.cpp. Token ids must lie in [0, V): the caller (the
// data loader) validates them; the device does not.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t D,
                       cudaStream_t stream);
// dtable[tokens[i]] += dout[i]; atomics, so the summation order of repeated tokens may vary.
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t D,
                        cudaStream_t stream);

}  // namespace moe::cuda
