// Token permutation by expert (dropless), with CUB: histogram of expert ids, exclusive scan to
// offsets, and a stable radix sort of the routing slots by expert id. Slot a = token * k + j is
// the j-th choice of a token; the sort keeps an expert's slots in token order, which is what
// moe/dispatcher.cpp's counting sort produces on the CPU.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// expert_ids[M] (M = N * k, values in [0, E)) -> sorted_slots[M] (slot ids in expert order),
// rows[M] = sorted_slots / k (the token row to gather), offsets[E + 1] (device, int64; expert e
// owns rows [offsets[e], offsets[e+1]) of the permuted buffer). Scratch is stream-ordered.
void permute_by_expert(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int32_t* expert_ids, int64_t M,
                       int64_t k, int64_t E, cudaStream_t stream);

// The inverse permutation: inv[perm[i]] = i for i < M (slot -> position in expert order).
void invert_permutation(int32_t* inv, const int32_t* perm, int64_t M, cudaStream_t stream);

}  // namespace moe::cuda
