// Token routing helpers: top-k selection, permutation into expert order and weighted combine.
#include <cstring>
#include <string>

#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

// Insertion into a sorted list of k: scanning experts in ascending order and inserting only when
// strictly greater keeps the lower index first among equal scores.
void topk_forward(int32_t* idx, float* vals, const float* scores, int64_t N, int64_t C, int64_t k) {
  MOE_CHECK(k >= 1 && k <= C, "topk: k = " + std::to_string(k) + " must lie in [1, " + std::to_string(C) + "]");
#pragma omp parallel for schedule(static) if (N * C > (1 << 14))
  for (int64_t i = 0; i < N; ++i) {
    const float* s = scores + i * C;
    int32_t* id = idx + i * k;
    float* vl = vals + i * k;
    int64_t filled = 0;
    for (int64_t c = 0; c < C; ++c) {
      if (filled == k && !(s[c] > vl[k - 1])) continue;
      int64_t pos = filled < k ? filled++ : k - 1;
      while (pos > 0 && s[c] > vl[pos - 1]) {
        vl[pos] = vl[pos - 1];
        id[pos] = id[pos - 1];
        --pos;
      }
      vl[pos] = s[c];
      id[pos] = static_cast<int32_t>(c);
    }
  }
}

void gather_rows(float* out, const float* inp, const int32_t* rows, int64_t M, int64_t D) {
#pragma omp parallel for schedule(static) if (M * D > (1 << 16))
  for (int64_t i = 0; i < M; ++i) {
    if (rows[i] < 0)
      std::memset(out + i * D, 0, sizeof(float) * D);  // padding row
    else
      std::memcpy(out + i * D, inp + static_cast<int64_t>(rows[i]) * D, sizeof(float) * D);
  }
}

// Destination rows repeat (a token sent to k experts), so threads split the columns and each walks
// the sources in order: the add order per element is fixed whatever the thread count.
void scatter_add_rows(float* out, const float* inp, const int32_t* rows, const float* weights, int64_t M,
                      int64_t D) {
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (D + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (M * D > (1 << 16))
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t j0 = blk * kBlock, j1 = j0 + kBlock < D ? j0 + kBlock : D;
    for (int64_t i = 0; i < M; ++i) {
      if (rows[i] < 0) continue;  // padding row
      const float w = weights ? weights[i] : 1.0f;
      float* dst = out + static_cast<int64_t>(rows[i]) * D;
      const float* src = inp + i * D;
      for (int64_t j = j0; j < j1; ++j) dst[j] += w * src[j];
    }
  }
}

void scatter_add_rows_backward(float* dinp, float* dweights, const float* dout, const float* inp,
                               const int32_t* rows, const float* weights, int64_t M, int64_t D) {
#pragma omp parallel for schedule(static) if (M * D > (1 << 16))
  for (int64_t i = 0; i < M; ++i) {
    if (rows[i] < 0) continue;  // padding row: dinp[i] and dweights[i] unchanged
    const float* g = dout + static_cast<int64_t>(rows[i]) * D;
    if (dinp) {
      const float w = weights ? weights[i] : 1.0f;
      float* dx = dinp + i * D;
      for (int64_t j = 0; j < D; ++j) dx[j] += w * g[j];
    }
    if (dweights) {
      const float* x = inp + i * D;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < D; ++j) s += g[j] * x[j];
      dweights[i] += s;
    }
  }
}

}  // namespace moe::ops
