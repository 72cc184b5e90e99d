// The two peaks the CPU benchmark (scripts/bench_cpu.sh) divides by, measured in the same run as
// the training it reports, and the training FLOPs per token of a config (the trainer's count):
//   MOE_THREADS=N bench_peak RESOLVED_CONFIG.yaml     -> one JSON line
// sgemm_peak: the faster of OpenBLAS sgemm and the AVX-512 fp32 kernel (the one fp32 steps run),
// the measurement behind metrics.jsonl's `mfu` (src/train/flops.cpp).
// bf16_peak: the bf16 GEMM a bf16 step runs (kernels/cpu/gemm_bf16.cpp) on the same square shape
// and the same best-of timing, packing and rounding of both operands included, as sgemm's includes
// its packing. Without AVX-512 BF16 a bf16 step runs sgemm, so the bf16 peak is the sgemm peak.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"
#include "src/train/config.h"
#include "src/train/flops.h"
#include "src/train/threads.h"

namespace {

// Best of `repeats` runs after one warm-up, as measure_sgemm_peak: C = A B^T, n x n x n.
double measure_bf16_peak(int64_t n, int repeats) {
  std::vector<float> a(size_t(n * n)), b(size_t(n * n)), out(size_t(n * n));
  // Values that are not bf16 already, so the rounding does its real work while packing.
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = 0.5f + 1e-4f * float(i % 97);
    b[i] = 0.25f - 1e-4f * float(i % 89);
  }
  double best = 0;
  for (int r = 0; r < repeats + 1; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    moe::ops::gemm_bf16(out.data(), n, a.data(), n, 1, b.data(), n, 1, n, n, n, false);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::max(best, 2.0 * double(n) * double(n) * double(n) / s);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: MOE_THREADS=N %s RESOLVED_CONFIG.yaml\n", argv[0]);
    return 2;
  }
  const char* env = std::getenv("MOE_THREADS");
  const int threads = env ? std::atoi(env) : 1;
  moe::set_threads(std::max(1, threads));
  const moe::Config c = moe::load_config(argv[1], {});
  // The trainer's shape (n 1024); more repeats than its 3, as the best run is the peak under load.
  constexpr int64_t n = 1024;
  constexpr int repeats = 10;
  const double sgemm = moe::measure_sgemm_peak(n, repeats);
  const bool kernel = moe::ops::gemm_bf16_available();
  const double bf16 = kernel ? measure_bf16_peak(n, repeats) : sgemm;
  std::printf(
      "{\"flops_per_token\": %.6e, \"sgemm_peak\": %.6e, \"bf16_peak\": %.6e, \"bf16_kernel\": %s, \"n\": %lld, "
      "\"threads\": %d}\n",
      moe::train_flops_per_token(c), sgemm, bf16, kernel ? "true" : "false", static_cast<long long>(n),
      std::max(1, threads));
  return 0;
}
