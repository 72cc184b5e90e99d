// The MoE combine and un-permutation without atomics (combine.cu). The expert layout's rows are
// inverted once into slot_row (slot s = token * K + k -> its layout row); then each token gathers
// its K rows and sums them in k order, so the result is the same bits on every run, and the
// un-permutation can overwrite its output (no zeroing pass). scatter_add_rows (routing.cuh) is the
// atomic scatter form of the same sum.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// inv[perm[i]] = i for every i < M with perm[i] >= 0; entries < 0 (the padding rows of a blocked
// expert layout) are skipped, and inv entries that no perm[i] names keep their old value. With
// perm = a layout's slots this is slot_row. M < 2^31.
void invert_permutation(int32_t* inv, const int32_t* perm, int64_t M, cudaStream_t stream);

// For t < N: out[t] = (start ? start[t] : 0) + sum over k < K, in k order, of
// w[t K + k] * inp[slot_row[t K + k]], one fmaf per term (weights null: w = 1, an exact add).
// start may be out (accumulate in place) or another [N, D] buffer (the residual add out of place:
// the MoE layer's output is its saved input plus the combine, in one pass). Weights are per slot
// (the router's [N, K] weights), not per layout row. A slot_row < 0 (a slot no expert took) adds
// nothing. out [N, D] fp32; inp [rows, D]. One group of lanes owns each token row (no atomics);
// 16-byte loads where D and the buffers' alignment allow, else scalar.
void combine_rows(float* out, const float* start, const float* inp, const int32_t* slot_row, const float* weights,
                  int64_t N, int64_t K, int64_t D, cudaStream_t stream);
void combine_rows(float* out, const float* start, const __nv_bfloat16* inp, const int32_t* slot_row,
                  const float* weights, int64_t N, int64_t K, int64_t D, cudaStream_t stream);

}  // namespace moe::cuda
