// Micro-benchmarks of the CPU ops at the bench_cpu shape: d_model 512, seq 256, 8 heads (8 kv heads),
// batch 4, 8 experts with hidden 1024 and top-2 routing, vocab 512.
//   build-*/tests/bench_ops [--benchmark_filter=Matmul]   (wall-clock times: the ops use threads)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/half.h"
#include "kernels/ops.h"

namespace {

constexpr int64_t kB = 4, kT = 256, kD = 512, kH = 8, kKV = 8, kHd = kD / kH, kE = 8, kFe = 1024, kV = 512,
                  kTopK = 2;
constexpr int64_t kN = kB * kT;          // tokens
constexpr int64_t kRouted = kN * kTopK;  // expert rows after dispatch

std::vector<float> randn(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

std::vector<int32_t> randint(int64_t n, uint64_t seed, int32_t hi) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(gen() % static_cast<uint64_t>(hi));
  return v;
}

void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- GEMMs ----------------------------------------------------------------------------
void BM_MatmulForward(benchmark::State& state) {
  const int64_t N = kN, I = kD, O = state.range(0);
  auto x = randn(N * I, 1), w = randn(O * I, 2, 0.02f);
  std::vector<float> out(N * O);
  for (auto _ : state) {
    moe::ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O);
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 2.0 * N * I * O);
}
BENCHMARK(BM_MatmulForward)->Arg(kD)->Arg(3 * kD)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_MatmulBackward(benchmark::State& state) {
  const int64_t N = kN, I = kD, O = kD;
  auto x = randn(N * I, 1), w = randn(O * I, 2, 0.02f), g = randn(N * O, 3);
  std::vector<float> dx(N * I), dw(O * I);
  for (auto _ : state) {
    moe::ops::matmul_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), N, I, O);
    benchmark::DoNotOptimize(dw.data());
  }
  set_flops(state, 4.0 * N * I * O);
}
BENCHMARK(BM_MatmulBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The AVX-512 fp32 kernel (gemm_f32.h) against cblas_sgemm, side by side, behind the matmul ops'
// sgemm() wrapper. Arg 0: 0 the kernel, 1 OpenBLAS. Arg 1, the product: 0 a dense layer forward
// (1024 tokens x 512 -> 2048, A B^T); 1 an expert forward (256 rows x 512 -> 1024, A B^T); 2 its
// input gradient (256 x 1024 -> 512, A B); 3 its weight gradient (1024 x 512 over 256 rows, A^T B).
void BM_SgemmPath(benchmark::State& state) {
  const bool kernel = state.range(0) == 0;
  const int64_t what = state.range(1);
  const int64_t N = what == 0 ? kN : kRouted / kE, I = kD, O = what == 0 ? 4 * kD : kFe;
  if (kernel && !moe::ops::gemm_f32_available()) return state.SkipWithError("no AVX-512F");
  moe::ops::set_gemm_f32_enabled(kernel);
  auto x = randn(N * I, 1), w = randn(O * I, 2, 0.02f), g = randn(N * O, 3);
  std::vector<float> out(N * O), dx(N * I), dw(O * I);
  for (auto _ : state) {
    if (what < 2) moe::ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O);
    if (what == 2) moe::ops::matmul_backward(dx.data(), nullptr, g.data(), x.data(), w.data(), N, I, O);
    if (what == 3) moe::ops::matmul_backward(nullptr, dw.data(), g.data(), x.data(), w.data(), N, I, O);
    benchmark::ClobberMemory();
  }
  moe::ops::set_gemm_f32_enabled(true);
  state.SetLabel(kernel ? "avx512 kernel" : "openblas");
  set_flops(state, 2.0 * N * I * O);
}
BENCHMARK(BM_SgemmPath)
    ->ArgsProduct({{0, 1}, {0, 1, 2, 3}})
    ->ArgNames({"openblas", "product"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

std::vector<int64_t> even_offsets() {
  std::vector<int64_t> off(kE + 1);
  for (int64_t e = 0; e <= kE; ++e) off[e] = e * kRouted / kE;
  return off;
}

void BM_GroupedMatmulForward(benchmark::State& state) {  // the w1 GEMM of the experts
  const auto off = even_offsets();
  auto x = randn(kRouted * kD, 1), w = randn(kE * kFe * kD, 2, 0.02f);
  std::vector<float> out(kRouted * kFe);
  for (auto _ : state) {
    moe::ops::grouped_matmul_forward(out.data(), x.data(), w.data(), off.data(), kE, kD, kFe);
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 2.0 * kRouted * kD * kFe);
}
BENCHMARK(BM_GroupedMatmulForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_GroupedMatmulBackward(benchmark::State& state) {
  const auto off = even_offsets();
  auto x = randn(kRouted * kD, 1), w = randn(kE * kFe * kD, 2, 0.02f), g = randn(kRouted * kFe, 3);
  std::vector<float> dx(kRouted * kD), dw(kE * kFe * kD);
  for (auto _ : state) {
    moe::ops::grouped_matmul_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), off.data(), kE, kD, kFe);
    benchmark::DoNotOptimize(dw.data());
  }
  set_flops(state, 4.0 * kRouted * kD * kFe);
}
BENCHMARK(BM_GroupedMatmulBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- attention --------------------------------------------------------------------------
struct AttentionData {
  std::vector<float> q = randn(kN * kH * kHd, 1), k = randn(kN * kKV * kHd, 2), v = randn(kN * kKV * kHd, 3);
  std::vector<float> out = std::vector<float>(kN * kH * kHd), att = std::vector<float>(kB * kH * kT * kT);
};
// Causal: about half of the T x T scores, two GEMM-like products each.
constexpr double kAttentionFlops = 2.0 * 2.0 * kB * kH * (kT * (kT + 1) / 2) * kHd;

// Arg 0: fp32; 1: bf16 (AVX-512 BF16 kernel where present); 2: bf16 on the sgemm path.
struct AttentionPrecision {
  moe::PrecisionScope scope;
  explicit AttentionPrecision(int64_t mode) : scope(mode == 0 ? moe::Precision::fp32 : moe::Precision::bf16) {
    moe::ops::set_gemm_bf16_enabled(mode != 2);
  }
  ~AttentionPrecision() { moe::ops::set_gemm_bf16_enabled(true); }
};

void BM_AttentionForward(benchmark::State& state) {
  AttentionData d;
  const AttentionPrecision precision(state.range(0));
  for (auto _ : state) {
    moe::ops::attention_forward(d.out.data(), d.att.data(), d.q.data(), d.k.data(), d.v.data(), kB, kT, kH, kKV, kHd);
    benchmark::DoNotOptimize(d.out.data());
  }
  set_flops(state, kAttentionFlops);
}
BENCHMARK(BM_AttentionForward)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AttentionBackward(benchmark::State& state) {
  AttentionData d;
  const AttentionPrecision precision(state.range(0));
  moe::ops::attention_forward(d.out.data(), d.att.data(), d.q.data(), d.k.data(), d.v.data(), kB, kT, kH, kKV, kHd);
  auto g = randn(kN * kH * kHd, 4);
  std::vector<float> dq(d.q.size()), dk(d.k.size()), dv(d.v.size());
  for (auto _ : state) {
    moe::ops::attention_backward(dq.data(), dk.data(), dv.data(), g.data(), d.att.data(), d.q.data(), d.k.data(),
                                 d.v.data(), kB, kT, kH, kKV, kHd);
    benchmark::DoNotOptimize(dq.data());
  }
  set_flops(state, 2.0 * kAttentionFlops);
}
BENCHMARK(BM_AttentionBackward)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- row-wise and elementwise ops -------------------------------------------------------
void BM_Rmsnorm(benchmark::State& state) {  // forward + backward
  auto x = randn(kN * kD, 1), w = randn(kD, 2), g = randn(kN * kD, 3);
  std::vector<float> out(kN * kD), rstd(kN), dx(kN * kD), dw(kD);
  for (auto _ : state) {
    moe::ops::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), kN, kD, 1e-5f);
    moe::ops::rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), kN, kD);
    benchmark::DoNotOptimize(dx.data());
  }
}
BENCHMARK(BM_Rmsnorm)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Rope(benchmark::State& state) {  // forward in place + backward, on q
  auto x = randn(kN * kD, 1), g = randn(kN * kD, 2);
  std::vector<float> dx(kN * kD);
  for (auto _ : state) {
    moe::ops::rope_forward(x.data(), x.data(), kB, kT, kH, kHd, 10000.0f);
    moe::ops::rope_backward(dx.data(), g.data(), kB, kT, kH, kHd, 10000.0f);
    benchmark::DoNotOptimize(dx.data());
  }
}
BENCHMARK(BM_Rope)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Swiglu(benchmark::State& state) {  // forward + backward over the routed expert activations
  const int64_t n = kRouted * kFe;
  auto a = randn(n, 1), b = randn(n, 2), g = randn(n, 3);
  std::vector<float> out(n), da(n), db(n);
  for (auto _ : state) {
    moe::ops::swiglu_forward(out.data(), a.data(), b.data(), n);
    moe::ops::swiglu_backward(da.data(), db.data(), g.data(), a.data(), b.data(), n);
    benchmark::DoNotOptimize(da.data());
  }
  state.SetBytesProcessed(state.iterations() * n * 8 * static_cast<int64_t>(sizeof(float)));
}
BENCHMARK(BM_Swiglu)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CrossEntropy(benchmark::State& state) {  // forward + backward
  auto logits = randn(kN * kV, 1);
  auto targets = randint(kN, 2, kV);
  std::vector<float> losses(kN), lse(kN), dlosses(kN, 1.0f / kN), dlogits(kN * kV);
  for (auto _ : state) {
    moe::ops::cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), kN, kV);
    moe::ops::cross_entropy_backward(dlogits.data(), dlosses.data(), logits.data(), lse.data(), targets.data(), kN, kV);
    benchmark::DoNotOptimize(dlogits.data());
  }
}
BENCHMARK(BM_CrossEntropy)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- routing ----------------------------------------------------------------------------
void BM_RouterSoftmaxTopk(benchmark::State& state) {
  auto logits = randn(kN * kE, 1);
  std::vector<float> probs(kN * kE), vals(kN * kTopK);
  std::vector<int32_t> idx(kN * kTopK);
  for (auto _ : state) {
    moe::ops::softmax_forward(probs.data(), logits.data(), kN, kE);
    moe::ops::topk_forward(idx.data(), vals.data(), probs.data(), kN, kE, kTopK);
    benchmark::DoNotOptimize(idx.data());
  }
}
BENCHMARK(BM_RouterSoftmaxTopk)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_GatherScatter(benchmark::State& state) {  // dispatch (gather) + weighted combine (scatter-add)
  auto x = randn(kN * kD, 1), w = randn(kRouted, 2);
  auto rows = randint(kRouted, 3, static_cast<int32_t>(kN));
  std::vector<float> routed(kRouted * kD), out(kN * kD);
  for (auto _ : state) {
    moe::ops::gather_rows(routed.data(), x.data(), rows.data(), kRouted, kD);
    moe::ops::scatter_add_rows(out.data(), routed.data(), rows.data(), w.data(), kRouted, kD);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_GatherScatter)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Embedding(benchmark::State& state) {  // forward + backward
  auto table = randn(kV * kD, 1), g = randn(kN * kD, 2);
  auto tokens = randint(kN, 3, static_cast<int32_t>(kV));
  std::vector<float> out(kN * kD), dtable(kV * kD);
  for (auto _ : state) {
    moe::ops::embedding_forward(out.data(), tokens.data(), table.data(), kN, kD);
    moe::ops::embedding_backward(dtable.data(), g.data(), tokens.data(), kN, kD);
    benchmark::DoNotOptimize(dtable.data());
  }
}
BENCHMARK(BM_Embedding)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- optimizer --------------------------------------------------------------------------
void BM_AdamwAndNorm(benchmark::State& state) {  // one MoE layer's expert weights: 3 x E x Fe x D
  const int64_t n = 3 * kE * kFe * kD;
  auto p = randn(n, 1, 0.02f), g = randn(n, 2, 1e-3f);
  std::vector<float> m(n), v(n);
  int64_t step = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(moe::ops::sum_squares(g.data(), n));
    moe::ops::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, ++step);
    benchmark::DoNotOptimize(p.data());
  }
  state.SetBytesProcessed(state.iterations() * n * 9 * static_cast<int64_t>(sizeof(float)));
}
BENCHMARK(BM_AdamwAndNorm)->Unit(benchmark::kMillisecond)->UseRealTime();

// The optimizer step of one bf16 tensor as the trainer ran it before the fused kernel (arg 0: the
// clipped gradient through a 64K scratch chunk, adamw_update, then the rounding pass into the
// compute copy) and with it (arg 1: one pass).
void BM_AdamwBf16Copy(benchmark::State& state) {
  const int64_t n = 3 * kE * kFe * kD, chunk = 1 << 16;
  auto p = randn(n, 1, 0.02f), g = randn(n, 2, 1e-3f);
  std::vector<float> m(n), v(n), copy(n), scratch(chunk);
  int64_t step = 0;
  for (auto _ : state) {
    ++step;
    if (state.range(0) == 1) {
      moe::ops::adamw_update_fused(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step,
                                   0.5f, copy.data(), moe::Precision::bf16);
    } else {
      for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        const int64_t len = std::min(chunk, n - c0);
        std::copy(g.begin() + c0, g.begin() + c0 + len, scratch.begin());
        moe::ops::scale_inplace(scratch.data(), 0.5f, len);
        moe::ops::adamw_update(p.data() + c0, scratch.data(), m.data() + c0, v.data() + c0, len, 1e-3f, 0.9f, 0.95f,
                               1e-8f, 0.1f, step);
      }
      moe::half::round_to(copy.data(), p.data(), n, moe::Precision::bf16);
    }
    benchmark::DoNotOptimize(copy.data());
  }
}
BENCHMARK(BM_AdamwBf16Copy)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
