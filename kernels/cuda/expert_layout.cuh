// Expands the compact expert order of permute_by_expert (expert e at rows [offsets[e],
// offsets[e+1])) into the padded layout of padded_matmul_* (expert e at rows [e * cap, e * cap +
// count_e), then -1 up to (e + 1) * cap: the row convention of gather_rows / scatter_add_rows for
// padding). cap = 0 copies the compact arrays unchanged (M entries).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// slots_out / rows_out: E * cap entries (M when cap = 0); offsets: device, E + 1.
void expand_expert_rows(int32_t* slots_out, int32_t* rows_out, const int32_t* slots, const int32_t* rows,
                        const int64_t* offsets, int64_t M, int64_t E, int64_t cap, cudaStream_t stream);

}  // namespace moe::cuda
