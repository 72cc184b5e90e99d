// Fused token-choice router (softmax scoring), one warp per token: probs = softmax(logits); experts
// chosen by top-k of probs + bias (the balancing bias steers selection only; ties go to the lower
// expert); weights = the chosen probs, divided by their sum when norm_topk_prob, times scale.
// Matches moe/router_scores.cpp (softmax router, score order "softmax_then_topk", no group limit).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// logits[N,E] fp32; bias[E] may be null; outputs probs[N,E], idx[N,k], weights[N,k].
void router_topk_forward(float* probs, int32_t* idx, float* weights, const float* logits, const float* bias,
                         int64_t N, int64_t E, int64_t k, bool norm_topk_prob, float scale, cudaStream_t stream);

}  // namespace moe::cuda
