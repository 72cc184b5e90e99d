#include "src/train/flops.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/gemm_f32.h"
#include "src/model/params.h"

namespace moe {

int64_t total_params(const Config& c) {
  const ParamTable table = build_param_table(c);
  int64_t n = 0;
  for (const auto& p : table.params()) n += p.numel;
  return n;
}

int64_t active_params(const Config& c) {
  // Matmul parameters one token passes through: embeddings are a lookup, experts count k of E.
  const auto& m = c.model;
  const int64_t D = m.d_model, hd = m.head_dim();
  int64_t n = m.vocab_size * D;  // output head
  for (int64_t i = 0; i < m.n_layers; ++i) {
    n += D * hd * (2 * m.n_heads + 2 * m.n_kv_heads);
    if (m.is_moe_layer(i)) {
      n += c.moe.num_experts * D;  // router
      n += (c.moe.top_k + c.moe.num_shared_experts) * 3 * D * c.moe.expert_hidden;
    } else {
      n += 3 * D * m.ffn_hidden;
    }
  }
  return n;
}

double train_flops_per_token(const Config& c) {
  const auto& m = c.model;
  const double attn = 2.0 * double(m.seq_len) * double(m.n_heads * m.head_dim()) * double(m.n_layers);
  return 3.0 * (2.0 * double(active_params(c)) + attn);
}

// The faster of OpenBLAS and the AVX-512 fp32 kernel (which the matmul ops run where the CPU has
// it): MFU against the slower one would overstate the utilisation.
double measure_sgemm_peak(int64_t n, int repeats) {
  std::vector<float> a(size_t(n * n), 0.5f), b(size_t(n * n), 0.25f), out(size_t(n * n));
  double best = 0;
  for (int path = 0; path < (ops::gemm_f32_available() ? 2 : 1); ++path)
    for (int r = 0; r < repeats + 1; ++r) {  // the first run warms caches and threads
      auto t0 = std::chrono::steady_clock::now();
      if (path == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(n), int(n), 1.0f, a.data(), int(n),
                    b.data(), int(n), 0.0f, out.data(), int(n));
      else
        ops::gemm_f32(out.data(), n, a.data(), n, 1, b.data(), n, 1, n, n, n, false);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) best = std::max(best, 2.0 * double(n) * double(n) * double(n) / s);
    }
  return best;
}

}  // namespace moe
