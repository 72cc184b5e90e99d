// Statistics and backward of the fused softmax router (router.cuh), twins of moe/router.cpp and
// moe/router_losses.cpp for the token-choice softmax router ("softmax then top-k"): the Switch
// aux loss and the z-loss need per-expert probability sums and each token's logsumexp; backward
// turns the combine-weight gradients into logit gradients through the renormalisation and the
// softmax, and adds the aux and z terms.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// lse[N] = logsumexp(logits[n]); sums[0..E) = sum_n probs[n, e]; sums[E] = sum_n lse[n]^2;
// sums[E + 1] = sum_n entropy(probs[n]) (double, deterministic: one block per sum, fixed order).
void router_stats(float* lse, double* sums, const float* logits, const float* probs, int64_t N, int64_t E,
                  cudaStream_t stream);

// dlogits[N,E] += d/dlogits of  sum_slots dweights . weights  +  aux  +  z, where
// weights = scale * p_sel / (norm ? sum p_sel : 1), the aux gradient is aux_coef[e] per token
// (d aux / d p[n, e], host-computed from the global counts) and the z-loss gradient is
// zc * lse[n] * p[n, e] (zc = 2 z_loss_coeff / global tokens).
void router_backward(float* dlogits, const float* probs, const int32_t* idx, const float* dweights,
                     const float* lse, const float* aux_coef, float zc, int64_t N, int64_t E, int64_t k, bool norm,
                     float scale, cudaStream_t stream);

}  // namespace moe::cuda
