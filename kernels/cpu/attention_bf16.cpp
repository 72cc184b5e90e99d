// KeyPanel (attention_bf16.h): the keys in the layout gemm_bf16_packed reads as its B operand,
// pairs of head dimensions per key, so that x k^T multiplies each row of x by every key.
#include "kernels/cpu/attention_bf16.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/half.h"

namespace moe::ops::cpu {

namespace {

// dst[r][0..cols) = bf16(src[r][0..cols)), zero up to ld_dst.
void rows_bf16(uint16_t* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    half::fp32_to_bf16(dst + r * ld_dst, src + r * ld_src, cols);
    std::fill(dst + r * ld_dst + cols, dst + (r + 1) * ld_dst, uint16_t(0));
  }
}

}  // namespace

void KeyPanel::load(const float* keys, int64_t ld, int64_t T, int64_t hd) {
  hd_ = hd;
  hdp_ = (hd + 1) / 2 * 2;
  ld_pairs_ = (T + 31) / 32 * 32;  // gemm_bf16_packed reads whole 32-column panels
  rows_.resize(size_t(T * hdp_));
  rows_bf16(rows_.data(), hdp_, keys, ld, T, hd);
  const int64_t pairs = hdp_ / 2;
  pairs_.assign(size_t(pairs * ld_pairs_), 0u);
  for (int64_t j = 0; j < T; ++j) {
    const uint16_t* row = rows_.data() + j * hdp_;
    for (int64_t p = 0; p < pairs; ++p) std::memcpy(&pairs_[size_t(p * ld_pairs_ + j)], row + 2 * p, 4);
  }
}

void KeyPanel::product(float* C, int64_t ldc, const float* x, int64_t ldx, int64_t rows, int64_t n) {
  a_.resize(size_t(rows * hdp_));
  rows_bf16(a_.data(), hdp_, x, ldx, rows, hd_);
  gemm_bf16_packed(C, ldc, a_.data(), hdp_, reinterpret_cast<const uint16_t*>(pairs_.data()), ld_pairs_, rows, n,
                   hd_, false);
}

}  // namespace moe::ops::cpu
