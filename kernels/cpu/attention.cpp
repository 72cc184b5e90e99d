// Causal grouped-query attention as GEMMs per (batch, head); att keeps the probabilities.
// Queries go in blocks of kBlock rows: block [r0, r1) only sees keys [0, r1), so every GEMM skips
// the zero upper triangle beyond its block (62% of the square's work at T = 256).
// One OpenMP task per (batch, head) in forward and per (batch, kv head) in backward, whose task owns
// dk/dv of that kv head and dq of its query heads: no two threads write the same element, and
// each GEMM runs single-threaded inside its task (blas_threads.h), so the bits do not depend on
// the thread count. Softmax: max subtraction, float sum.
// Under a bf16/fp16 compute precision (kernels/precision.h) q, k, v and dout are rounded to it on
// entry (on the calling thread); the probabilities and their gradient stay fp32 (docs/precision.md).
// Under bf16 on a CPU with AVX-512 BF16 the products of two rounded operands, q k^T and
// dp = dout v^T, run on the bf16 kernel (attention_bf16.h: the same values up to fp32 summation
// order); the products with P or dS stay on sgemm.
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/attention_bf16.h"
#include "kernels/cpu/blas_threads.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

namespace {

constexpr int64_t kBlock = 64;

void check_heads(int64_t H, int64_t KV) {
  MOE_CHECK(KV > 0 && H % KV == 0,
            "attention: n_heads " + std::to_string(H) + " must be a multiple of n_kv_heads " + std::to_string(KV));
}

// C[M,N] = op(A) op(B) + beta C, row-major.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M), blasint(N),
              blasint(K), 1.0f, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
}

// Row t of the scores (keys 0..t) -> probabilities in place; the rest of the row up to `end` is 0.
void softmax_row(float* p, int64_t t, int64_t end, float scale) {
  float mx = p[0];
  for (int64_t j = 1; j <= t; ++j) mx = p[j] > mx ? p[j] : mx;
  float sum = 0.0f;
  for (int64_t j = 0; j <= t; ++j) {
    p[j] = cpu::fast_exp((p[j] - mx) * scale);
    sum += p[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j <= t; ++j) p[j] *= inv;
  for (int64_t j = t + 1; j < end; ++j) p[j] = 0.0f;
}

int task_threads(int64_t B, int64_t T, int64_t H, int64_t hd) {
#ifdef _OPENMP
  return B * H * T * T * hd > (1 << 16) ? omp_get_max_threads() : 1;
#else
  (void)B, (void)H, (void)T, (void)hd;  // the GPU tests' CPU twins build without OpenMP
  return 1;
#endif
}

// The rounded copies of q, k, v, dout: kept between calls, so that a step does not map and fault
// in fresh pages for them (megabytes per layer).
thread_local std::vector<float> t_rounded[4];

// The operands rounded to the compute precision: `x` itself under fp32, else a copy in `buf`.
const float* rounded(const float* x, int64_t n, std::vector<float>& buf) {
  const Precision p = compute_precision();
  if (p == Precision::fp32 || !x) return x;
  buf.resize(size_t(n));
  half::round_to(buf.data(), x, n, p);
  return buf.data();
}

bool bf16_kernel() { return compute_precision() == Precision::bf16 && gemm_bf16_available(); }

}  // namespace

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B,
                       int64_t T, int64_t H, int64_t KV, int64_t hd) {
  check_heads(H, KV);
  const int64_t group = H / KV, qC = H * hd, kvC = KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float>& rq = t_rounded[0], &rk = t_rounded[1], &rv = t_rounded[2];
  q = rounded(q, B * T * qC, rq);
  k = rounded(k, B * T * kvC, rk);
  v = rounded(v, B * T * kvC, rv);
  const int threads = task_threads(B, T, H, hd);
  const bool kernel = bf16_kernel();
  cpu::BlasSingleThreaded one_blas_thread(threads > 1);
#pragma omp parallel num_threads(threads)
  {
    cpu::KeyPanel keys;
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* kh = k + b * T * kvC + (h / group) * hd;
      const float* vh = v + b * T * kvC + (h / group) * hd;
      float* ah = att + bh * T * T;
      if (kernel) keys.load(kh, kvC, T, hd);
      for (int64_t r0 = 0; r0 < T; r0 += kBlock) {
        const int64_t r1 = std::min(T, r0 + kBlock), rows = r1 - r0;
        const float* qr = q + (b * T + r0) * qC + h * hd;
        if (kernel) keys.product(ah + r0 * T, T, qr, qC, rows, r1);                   // scores [rows, r1]
        else gemm(false, true, rows, r1, hd, qr, qC, kh, kvC, 0.0f, ah + r0 * T, T);  // scores [rows, r1]
        for (int64_t t = r0; t < r1; ++t) {
          softmax_row(ah + t * T, t, r1, scale);
          std::fill(ah + t * T + r1, ah + (t + 1) * T, 0.0f);
        }
        gemm(false, false, rows, hd, r1, ah + r0 * T, T, vh, kvC, 0.0f, out + (b * T + r0) * qC + h * hd, qC);
      }
    }
  }
}

// With s = scale * q.k and p = softmax(s): dv += p^T dout; dp = dout v^T;
// ds = p (dp - rowsum(p dp)) * scale; dq += ds k; dk += ds^T q. Per block of query rows.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                        int64_t hd) {
  check_heads(H, KV);
  const int64_t group = H / KV, qC = H * hd, kvC = KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float>& rq = t_rounded[0], &rk = t_rounded[1], &rv = t_rounded[2], &rd = t_rounded[3];
  q = rounded(q, B * T * qC, rq);
  k = rounded(k, B * T * kvC, rk);
  v = rounded(v, B * T * kvC, rv);
  dout = rounded(dout, B * T * qC, rd);
  const int threads = task_threads(B, T, H, hd);
  const bool kernel = bf16_kernel() && (dq || dk);
  cpu::BlasSingleThreaded one_blas_thread(threads > 1);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> ds(size_t(kBlock * T));  // one block of rows of dp, then ds
    cpu::KeyPanel values;
#pragma omp for schedule(static)
    for (int64_t bkv = 0; bkv < B * KV; ++bkv) {
      const int64_t b = bkv / KV, kvh = bkv % KV, kv_off = b * T * kvC + kvh * hd;
      if (kernel) values.load(v + kv_off, kvC, T, hd);
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* ah = att + (b * H + h) * T * T;
        for (int64_t r0 = 0; r0 < T; r0 += kBlock) {
          const int64_t r1 = std::min(T, r0 + kBlock), rows = r1 - r0, q_off = (b * T + r0) * qC + h * hd;
          if (dv) gemm(true, false, r1, hd, rows, ah + r0 * T, T, dout + q_off, qC, 1.0f, dv + kv_off, kvC);
          if (!dq && !dk) continue;
          if (kernel) values.product(ds.data(), r1, dout + q_off, qC, rows, r1);  // dp
          else gemm(false, true, rows, r1, hd, dout + q_off, qC, v + kv_off, kvC, 0.0f, ds.data(), r1);
          for (int64_t t = r0; t < r1; ++t) {
            const float* p = ah + t * T;
            float* d = ds.data() + (t - r0) * r1;
            float pdp = 0.0f;
            for (int64_t j = 0; j <= t; ++j) pdp += p[j] * d[j];
            for (int64_t j = 0; j <= t; ++j) d[j] = p[j] * (d[j] - pdp) * scale;
            for (int64_t j = t + 1; j < r1; ++j) d[j] = 0.0f;
          }
          if (dq) gemm(false, false, rows, hd, r1, ds.data(), r1, k + kv_off, kvC, 1.0f, dq + q_off, qC);
          if (dk) gemm(true, false, r1, hd, rows, ds.data(), r1, q + q_off, qC, 1.0f, dk + kv_off, kvC);
        }
      }
    }
  }
}

}  // namespace moe::ops
