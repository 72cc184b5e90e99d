// Attention's q k^T-shaped products (the scores q k^T and dp = dout v^T) on the AVX-512 BF16
// kernel under train.precision bf16: both operands are bf16 values there (docs/precision.md), so
// only the fp32 summation order differs from the sgemm of the rounded operands. One head's keys
// (or values) are converted and packed once per task and serve all its query blocks; a generic
// GEMM call would re-pack them per block.
#pragma once
#include <cstdint>
#include <vector>

namespace moe::ops::cpu {

class KeyPanel {
 public:
  // Rows j < T of `keys` (hd values each, rows ld apart), rounded to bf16.
  void load(const float* keys, int64_t ld, int64_t T, int64_t hd);
  // C[rows, n] = bf16(x)[rows, hd] . keys[0..n)^T (overwrites C), x's rows ldx apart; n <= T.
  void product(float* C, int64_t ldc, const float* x, int64_t ldx, int64_t rows, int64_t n);

 private:
  int64_t hd_ = 0, hdp_ = 0, ld_pairs_ = 0;
  std::vector<uint16_t> rows_, a_;
  std::vector<uint32_t> pairs_;  // pairs along hd: [hdp/2][ld_pairs] (key j in column j)
};

}  // namespace moe::ops::cpu
