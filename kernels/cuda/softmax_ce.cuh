// Row softmax and fused token cross-entropy, twins of kernels/cpu/softmax_ce.cpp. Cross-entropy has
// bf16-logit variants (losses, lse and dlosses stay fp32). Targets are not validated on the host
// (they live on the device): a target outside [0, V) yields a NaN loss and no one-hot term.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void softmax_forward(float* probs, const float* logits, int64_t N, int64_t C, cudaStream_t stream);
// dlogits += J^T dprobs
void softmax_backward(float* dlogits, const float* dprobs, const float* probs, int64_t N, int64_t C,
                      cudaStream_t stream);

// losses[i] = logsumexp(logits[i]) - logits[i, targets[i]]; lse may be null.
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V, cudaStream_t stream);
void cross_entropy_forward(float* losses, float* lse, const __nv_bfloat16* logits, const int32_t* targets,
                           int64_t N, int64_t V, cudaStream_t stream);
// dlogits[i] += dlosses[i] * (softmax(logits[i]) - onehot(targets[i])) (= when accumulate is
// false: dlogits is not read); lse may be null (recomputed).
void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V, cudaStream_t stream, bool accumulate = true);
void cross_entropy_backward(__nv_bfloat16* dlogits, const float* dlosses, const __nv_bfloat16* logits,
                            const float* lse, const int32_t* targets, int64_t N, int64_t V, cudaStream_t stream,
                            bool accumulate = true);

}  // namespace moe::cuda
