// The op set. Every op has a CPU implementation in kernels/cpu/ and (with the CUDA issue) a twin
// in kernels/cuda/ with the same signature. Conventions:
// - fp32, row-major; arguments are outputs first, then inputs, then sizes.
// - Backward functions ACCUMULATE (+=) into gradient outputs; a null gradient pointer skips it.
// - Activations are [N, D] with N = B*T tokens (token t of sequence b is row b*T + t).
// - Deterministic: the same inputs and thread count give the same bits.
#pragma once
#include <cstdint>

#include "kernels/precision.h"

namespace moe::ops {

// ---- linear algebra -------------------------------------------------------------------
// out[N,O] = inp[N,I] @ weight[O,I]^T  (out += ... when accumulate)
void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t I, int64_t O,
                    bool accumulate = false);
// dinp[N,I] += dout[N,O] @ weight[O,I];  dweight[O,I] += dout^T @ inp
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t I, int64_t O);

// Experts: rows [offsets[e], offsets[e+1]) of inp use weight e (weights[E,O,I]); one call for all
// experts so that a backend can issue one grouped GEMM.
void grouped_matmul_forward(float* out, const float* inp, const float* weights, const int64_t* offsets,
                            int64_t E, int64_t I, int64_t O);
void grouped_matmul_backward(float* dinp, float* dweights, const float* dout, const float* inp,
                             const float* weights, const int64_t* offsets, int64_t E, int64_t I, int64_t O);

// ---- elementwise ----------------------------------------------------------------------
void add_inplace(float* a, const float* b, int64_t n);            // a += b
void scale_inplace(float* a, float s, int64_t n);                 // a *= s
// out = silu(a) * b
void swiglu_forward(float* out, const float* a, const float* b, int64_t n);
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b, int64_t n);

// ---- embedding ------------------------------------------------------------------------
void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t D);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t D);

// ---- RMSNorm: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps) (saved [N]) ----
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t D,
                     float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t D);

// ---- RoPE, rotate-half convention over x[B*T, n_heads*head_dim]; position = row % T ------
// inv_freq_i = theta^(-2i/head_dim); out = x*cos + rotate_half(x)*sin. out may alias inp.
void rope_forward(float* out, const float* inp, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                  float theta);
// dinp += R^T dout (the inverse rotation).
void rope_backward(float* dinp, const float* dout, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                   float theta);

// ---- causal grouped-query attention --------------------------------------------------
// q[B*T, H*hd], k/v[B*T, KV*hd], out[B*T, H*hd]; att[B, H, T, T] holds the softmax
// probabilities (upper triangle zero) for backward. Head h reads kv head h / (H/KV).
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B,
                       int64_t T, int64_t H, int64_t KV, int64_t hd);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                        int64_t hd);

// ---- softmax / cross-entropy ---------------------------------------------------------
void softmax_forward(float* probs, const float* logits, int64_t N, int64_t C);
// dlogits += J^T dprobs
void softmax_backward(float* dlogits, const float* dprobs, const float* probs, int64_t N, int64_t C);
// losses[i] = logsumexp(logits[i]) - logits[i, targets[i]]; lse[i] saved (may be null).
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V);
// dlogits[i] += dlosses[i] * (softmax(logits[i]) - onehot(targets[i]))
void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V);

// ---- routing -------------------------------------------------------------------------
// Per row: the k largest scores, descending; ties go to the lower expert index.
void topk_forward(int32_t* idx, float* vals, const float* scores, int64_t N, int64_t C, int64_t k);
// A row index < 0 marks a padding row (padded expert layouts): gather_rows writes a zero row there,
// scatter_add_rows skips it, scatter_add_rows_backward leaves dinp[i] and dweights[i] unchanged.
// out[i] = inp[rows[i]]  (permute tokens into expert order; zeros where rows[i] < 0)
void gather_rows(float* out, const float* inp, const int32_t* rows, int64_t M, int64_t D);
// out[rows[i]] += inp[i] * (weights ? weights[i] : 1) for rows[i] >= 0  (unpermute and combine)
void scatter_add_rows(float* out, const float* inp, const int32_t* rows, const float* weights, int64_t M,
                      int64_t D);
// Backward of scatter_add_rows, for rows[i] >= 0: dinp[i] += w[i] * dout[rows[i]];
// dweights[i] += dot(dout[rows[i]], inp[i]).
void scatter_add_rows_backward(float* dinp, float* dweights, const float* dout, const float* inp,
                               const int32_t* rows, const float* weights, int64_t M, int64_t D);

// ---- optimizer -----------------------------------------------------------------------
// AdamW with decoupled weight decay; `step` counts from 1 (bias correction).
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t step);
// The same update in one pass with the gradient multiplied by grad_scale on the way in (clipping,
// fp16 unscaling): the bits of scaling a copy of grad, then adamw_update. When `copy` is not null it
// also receives the updated param rounded to `copy_precision` (half::round_to: the mixed-precision
// compute copy), written while the chunk is still in cache.
void adamw_update_fused(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, int64_t step, float grad_scale, float* copy,
                        Precision copy_precision);
// sum of squares, accumulated in double for a layout-stable global norm.
double sum_squares(const float* x, int64_t n);

}  // namespace moe::ops
