// Causal grouped-query attention, one (batch, head) at a time; att keeps the probabilities.
// K (forward) and V (backward) of a head are first transposed to [hd, T], so that a row of scores
// is a sum of contiguous axpys over keys instead of T short dot products (which vectorise badly).
// Backward also keeps three T x T scratch matrices per task (ds rows, ds and p transposed).
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

// dst[c * ld_dst + r] = src[r * ld_src + c] for r < rows, c < cols, in 16 x 16 tiles so that
// both sides touch few cache lines at a time.
void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t r1 = r0 + kTile < rows ? r0 + kTile : rows, c1 = c0 + kTile < cols ? c0 + kTile : cols;
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * ld_dst + r] = src[r * ld_src + c];
    }
}

// row[j] = sum_d a[d] * mt[d * T + j] for j <= t (mt is a transposed head). Four d per pass over
// the row: the row is loaded and stored a quarter as often.
void row_times_transposed(float* row, const float* a, const float* mt, int64_t t, int64_t T, int64_t hd) {
  for (int64_t j = 0; j <= t; ++j) row[j] = 0.0f;
  int64_t d = 0;
  for (; d + 4 <= hd; d += 4) {
    const float a0 = a[d], a1 = a[d + 1], a2 = a[d + 2], a3 = a[d + 3];
    const float *m0 = mt + d * T, *m1 = m0 + T, *m2 = m1 + T, *m3 = m2 + T;
    for (int64_t j = 0; j <= t; ++j) row[j] += a0 * m0[j] + a1 * m1[j] + a2 * m2[j] + a3 * m3[j];
  }
  for (; d < hd; ++d)
    for (int64_t j = 0; j <= t; ++j) row[j] += a[d] * mt[d * T + j];
}

inline void axpy(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// y += sum_{j <= t} c[j] * rows[j * stride : + n]; four rows per pass over y.
void add_weighted_rows(float* y, const float* c, const float* rows, int64_t stride, int64_t t, int64_t n) {
  int64_t j = 0;
  for (; j + 4 <= t + 1; j += 4) {
    const float *r0 = rows + j * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
    const float c0 = c[j], c1 = c[j + 1], c2 = c[j + 2], c3 = c[j + 3];
    for (int64_t i = 0; i < n; ++i) y[i] += c0 * r0[i] + c1 * r1[i] + c2 * r2[i] + c3 * r3[i];
  }
  for (; j <= t; ++j) axpy(y, c[j], rows + j * stride, n);
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
    transpose(kt.data(), T, k + kv_off, kvC, T, hd);
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
      add_weighted_rows(ot, p, v + kv_off, kvC, t, hd);
    }
  }
}

// With s = scale * q.k and p = softmax(s): dv_j += p_j dout; dp_j = dout.v_j;
// ds_j = p_j (dp_j - sum_i p_i dp_i); dq += scale ds_j k_j; dk_j += scale ds_j q.
// Per head: a pass over queries t fills dq and keeps the rows of ds; ds and p are then transposed
// to [key j][query t], and a pass over keys j gathers dk_j and dv_j from the queries t >= j.
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
    std::vector<float> vt(hd * T), ds_rows(T * T), ds_t(T * T), p_t(T * T);
    transpose(vt.data(), T, v + kv_off, kvC, T, hd);
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t q_off = (b * T + t) * qC + h * hd;
        const float* p = att + ((b * H + h) * T + t) * T;
        float* ds = ds_rows.data() + t * T;  // entries j > t are never read
        row_times_transposed(ds, dout + q_off, vt.data(), t, T, hd);  // dp
        float pdp = 0.0f;
        for (int64_t j = 0; j <= t; ++j) pdp += p[j] * ds[j];
        for (int64_t j = 0; j <= t; ++j) ds[j] = p[j] * (ds[j] - pdp) * scale;
        if (dq) add_weighted_rows(dq + q_off, ds, k + kv_off, kvC, t, hd);
      }
      if (dk) transpose(ds_t.data(), T, ds_rows.data(), T, T, T);
      if (dv) transpose(p_t.data(), T, att + (b * H + h) * T * T, T, T, T);
      const int64_t q_head = b * T * qC + h * hd;
      for (int64_t j = 0; j < T; ++j) {
        const int64_t rest = T - 1 - j;  // queries t = j .. T-1 see key j
        if (dk) add_weighted_rows(dk + kv_off + j * kvC, ds_t.data() + j * T + j, q + q_head + j * qC, qC, rest, hd);
        if (dv)
          add_weighted_rows(dv + kv_off + j * kvC, p_t.data() + j * T + j, dout + q_head + j * qC, qC, rest, hd);
      }
    }
  }
}

}  // namespace moe::ops
