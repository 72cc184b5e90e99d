// Expands the compact expert order of permute_by_expert (expert e at rows [offsets[e],
// offsets[e+1])) into the blocked layout of blocked_matmul_* (moe/expert_padding.h: expert e at
// rows [start[e], start[e+1]), its rows first, then -1: the padding-row convention of gather_rows /
// scatter_add_rows). The compact layout needs no expansion: use permute_by_expert's arrays.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// slots_out / rows_out: rows_out_count = start[E] entries; offsets and start: device, E + 1 each.
void expand_expert_rows(int32_t* slots_out, int32_t* rows_out, const int32_t* slots, const int32_t* rows,
                        const int64_t* offsets, const int64_t* start, int64_t E, int64_t rows_out_count,
                        cudaStream_t stream);

}  // namespace moe::cuda
