// The GEMM ops per compute precision at the bench_cpu shapes (d_model 512, 2048 tokens, experts of
// hidden 1024 over 4096 routed rows): fp32 sgemm, bf16 with the AVX-512 BF16 kernel, bf16 on the
// sgemm path (the fallback of CPUs without it), fp16 (sgemm of rounded operands).
//   build/tests/bench_precision [--benchmark_filter=Forward]   (wall-clock: the ops use threads)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/half.h"
#include "kernels/ops.h"

namespace {

constexpr int64_t kN = 2048, kD = 512, kF = 1024, kE = 8, kRouted = 2 * kN;

std::vector<float> randn(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

// Arg 0: fp32, 1: bf16 kernel, 2: bf16 via sgemm, 3: fp16.
struct Mode {
  moe::Precision p;
  bool kernel;
};
Mode mode_of(int64_t a) {
  switch (a) {
    case 1: return {moe::Precision::bf16, true};
    case 2: return {moe::Precision::bf16, false};
    case 3: return {moe::Precision::fp16, false};
    default: return {moe::Precision::fp32, false};
  }
}
const char* label(int64_t a) { return a == 0 ? "fp32" : a == 1 ? "bf16 kernel" : a == 2 ? "bf16 sgemm" : "fp16"; }

void set_flops(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(label(state.range(0)));
}

void BM_MatmulForward(benchmark::State& state) {
  const Mode m = mode_of(state.range(0));
  if (m.kernel && !moe::ops::gemm_bf16_available()) return state.SkipWithError("no AVX-512 BF16");
  moe::ops::set_gemm_bf16_enabled(m.kernel);
  auto x = randn(kN * kD, 1), w = randn(kF * kD, 2, 0.02f);
  std::vector<float> out(size_t(kN * kF));
  const moe::PrecisionScope scope(m.p);
  for (auto _ : state) {
    moe::ops::matmul_forward(out.data(), x.data(), w.data(), kN, kD, kF);
    benchmark::DoNotOptimize(out.data());
  }
  moe::ops::set_gemm_bf16_enabled(true);
  set_flops(state, 2.0 * kN * kD * kF);
}
BENCHMARK(BM_MatmulForward)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MatmulBackward(benchmark::State& state) {
  const Mode m = mode_of(state.range(0));
  if (m.kernel && !moe::ops::gemm_bf16_available()) return state.SkipWithError("no AVX-512 BF16");
  moe::ops::set_gemm_bf16_enabled(m.kernel);
  auto x = randn(kN * kD, 1), w = randn(kF * kD, 2, 0.02f), g = randn(kN * kF, 3);
  std::vector<float> dx(size_t(kN * kD)), dw(size_t(kF * kD));
  const moe::PrecisionScope scope(m.p);
  for (auto _ : state) {
    moe::ops::matmul_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), kN, kD, kF);
    benchmark::DoNotOptimize(dw.data());
  }
  moe::ops::set_gemm_bf16_enabled(true);
  set_flops(state, 4.0 * kN * kD * kF);
}
BENCHMARK(BM_MatmulBackward)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_GroupedForward(benchmark::State& state) {
  const Mode m = mode_of(state.range(0));
  if (m.kernel && !moe::ops::gemm_bf16_available()) return state.SkipWithError("no AVX-512 BF16");
  moe::ops::set_gemm_bf16_enabled(m.kernel);
  auto x = randn(kRouted * kD, 1), w = randn(kE * kF * kD, 2, 0.02f);
  std::vector<int64_t> offsets(kE + 1);
  for (int64_t e = 0; e <= kE; ++e) offsets[size_t(e)] = e * kRouted / kE;
  std::vector<float> out(size_t(kRouted * kF));
  const moe::PrecisionScope scope(m.p);
  for (auto _ : state) {
    moe::ops::grouped_matmul_forward(out.data(), x.data(), w.data(), offsets.data(), kE, kD, kF);
    benchmark::DoNotOptimize(out.data());
  }
  moe::ops::set_gemm_bf16_enabled(true);
  set_flops(state, 2.0 * kRouted * kD * kF);
}
BENCHMARK(BM_GroupedForward)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
