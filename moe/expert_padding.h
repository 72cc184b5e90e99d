// The blocked expert layout of the GPU expert GEMMs (kernels/cuda/matmul.cuh blocked_matmul_*):
// expert e owns whole blocks of `block` rows, rows [start[e], start[e + 1]), its tokens first and
// zero rows after them, so the GEMMs run as uniform batched cuBLAS calls instead of the slower
// grouped one. The expert buffers hold the routed rows M times train.gpu_expert_padding; the block
// is the largest expert's rows (rounded up) when all experts fit with one block each, else the
// largest block for which any routing fits: M + E x (block - 1) rows at most.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe {

inline constexpr int64_t kExpertPadRows = 16;  // block granularity: keeps every block 32-byte aligned in bf16

// Rows the expert buffers hold for M routed rows: M when padding is off (allowance <= 0), else
// max(M, ceil(allowance x M)).
int64_t expert_buffer_rows(int64_t M, double allowance);

struct ExpertBlocks {
  int64_t block = 0;           // rows per block; 0 = the compact layout (grouped GEMM)
  std::vector<int64_t> start;  // E + 1 row offsets of the experts (empty when compact)
  int64_t max_blocks = 0;      // blocks of the largest expert
  int64_t rows() const { return start.empty() ? 0 : start.back(); }
  int64_t blocks(int64_t e) const { return (start[size_t(e + 1)] - start[size_t(e)]) / block; }
};

// offsets: E + 1 non-decreasing row offsets of the compact layout; buffer_rows: expert_buffer_rows.
// Compact when padding is off, nothing is routed or no block of kExpertPadRows rows fits.
ExpertBlocks expert_blocks(const int64_t* offsets, int64_t E, int64_t buffer_rows, double allowance);

}  // namespace moe
