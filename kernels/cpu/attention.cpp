// Causal grouped-query attention, one (batch, head) at a time; att keeps the probabilities.
// K and V of the head are first transposed to [hd, T], so that a row of scores is a sum of
// contiguous axpys over keys instead of T short dot products (which do not vectorise).
// Softmax: max subtraction, float sum. Backward runs one task per (batch, kv head), which owns
// dk/dv of that kv head and dq of its query heads: no two threads write the same element.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

namespace {

void check_heads(int64_t H, int64_t KV) {
  MOE_CHECK(KV > 0 && H % KV == 0,
            "attention: n_heads " + std::to_string(H) + " must be a multiple of n_kv_heads " + std::to_string(KV));
}

// dst[d * T + j] = src[j * stride + d]: one kv head of one sequence, transposed.
void transpose_head(float* dst, const float* src, int64_t T, int64_t hd, int64_t stride) {
  for (int64_t j = 0; j < T; ++j)
    for (int64_t d = 0; d < hd; ++d) dst[d * T + j] = src[j * stride + d];
}

// row[j] = sum_d a[d] * mt[d * T + j] for j <= t (mt is a transposed head).
void row_times_transposed(float* row, const float* a, const float* mt, int64_t t, int64_t T, int64_t hd) {
  for (int64_t j = 0; j <= t; ++j) row[j] = 0.0f;
  for (int64_t d = 0; d < hd; ++d) {
    const float ad = a[d];
    const float* m = mt + d * T;
    for (int64_t j = 0; j <= t; ++j) row[j] += ad * m[j];
  }
}

inline void axpy(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

bool worth_threads(int64_t B, int64_t T, int64_t H, int64_t hd) { return B * H * T * T * hd > (1 << 16); }

}  // namespace

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B,
                       int64_t T, int64_t H, int64_t KV, int64_t hd) {
  check_heads(H, KV);
  const int64_t group = H / KV, qC = H * hd, kvC = KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
#pragma omp parallel for schedule(static) if (worth_threads(B, T, H, hd))
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H, kv_off = b * T * kvC + (h / group) * hd;
    std::vector<float> kt(hd * T);
    transpose_head(kt.data(), k + kv_off, T, hd, kvC);
    for (int64_t t = 0; t < T; ++t) {
      float* p = att + (bh * T + t) * T;
      row_times_transposed(p, q + (b * T + t) * qC + h * hd, kt.data(), t, T, hd);
      float mx = p[0];
      for (int64_t j = 1; j <= t; ++j) mx = p[j] > mx ? p[j] : mx;
      float sum = 0.0f;
      for (int64_t j = 0; j <= t; ++j) {
        p[j] = cpu::fast_exp((p[j] - mx) * scale);
        sum += p[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j <= t; ++j) p[j] *= inv;
      for (int64_t j = t + 1; j < T; ++j) p[j] = 0.0f;
      float* ot = out + (b * T + t) * qC + h * hd;
      for (int64_t i = 0; i < hd; ++i) ot[i] = 0.0f;
      for (int64_t j = 0; j <= t; ++j) axpy(ot, p[j], v + kv_off + j * kvC, hd);
    }
  }
}

// With s = scale * q.k and p = softmax(s): dv_j += p_j dout; dp_j = dout.v_j;
// ds_j = p_j (dp_j - sum_i p_i dp_i); dq += scale ds_j k_j; dk_j += scale ds_j q.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                        int64_t hd) {
  check_heads(H, KV);
  const int64_t group = H / KV, qC = H * hd, kvC = KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
#pragma omp parallel for schedule(static) if (worth_threads(B, T, H, hd))
  for (int64_t bkv = 0; bkv < B * KV; ++bkv) {
    const int64_t b = bkv / KV, kvh = bkv % KV;
    const int64_t kv_off = b * T * kvC + kvh * hd;
    std::vector<float> vt(hd * T), ds(T);
    transpose_head(vt.data(), v + kv_off, T, hd, kvC);
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t q_off = (b * T + t) * qC + h * hd;
        const float* dout_t = dout + q_off;
        const float* p = att + ((b * H + h) * T + t) * T;
        row_times_transposed(ds.data(), dout_t, vt.data(), t, T, hd);  // dp
        float pdp = 0.0f;
        for (int64_t j = 0; j <= t; ++j) pdp += p[j] * ds[j];
        for (int64_t j = 0; j <= t; ++j) ds[j] = p[j] * (ds[j] - pdp) * scale;
        if (dv)
          for (int64_t j = 0; j <= t; ++j) axpy(dv + kv_off + j * kvC, p[j], dout_t, hd);
        if (dq)
          for (int64_t j = 0; j <= t; ++j) axpy(dq + q_off, ds[j], k + kv_off + j * kvC, hd);
        if (dk)
          for (int64_t j = 0; j <= t; ++j) axpy(dk + kv_off + j * kvC, ds[j], q + q_off, hd);
      }
    }
  }
}

}  // namespace moe::ops
