// The padded expert layout of the GPU expert GEMMs (kernels/cuda/matmul.cuh padded_matmul_*): every
// expert owns `cap` rows of the expert buffers, cap = the largest expert's rows rounded up to
// kExpertPadRows. It is taken only when E x cap rows fit the buffers, which hold the routed rows
// times train.gpu_expert_padding; otherwise the compact layout and the grouped GEMM run.
#pragma once
#include <cstdint>

namespace moe {

inline constexpr int64_t kExpertPadRows = 16;  // keeps every expert's block 32-byte aligned in bf16

// Rows the expert buffers hold for M routed rows: M when padding is off (allowance <= 0), else
// max(M, ceil(allowance x M)).
int64_t expert_buffer_rows(int64_t M, double allowance);

// offsets: E + 1 non-decreasing row offsets of the compact layout. Returns the padded layout's
// rows per expert, or 0 for the compact layout (padding off, nothing routed, or E x cap > buffer_rows).
int64_t padded_expert_cap(const int64_t* offsets, int64_t E, int64_t buffer_rows, double allowance);

}  // namespace moe
