// End-to-end training throughput on one GPU: the device step (src/cuda/device_model.h) on a model
// given as key=value arguments (scripts/gpu_check.sh passes configs/gpu_bench.yaml), run as MoE and
// as the dense model of equal active FLOPs (ffn_hidden = top_k * expert_hidden, no MoE layers), and
// as MoE on the compact layout + grouped GEMM (moe-g, gpu_expert_padding = 0).
// Reports step time, tokens/s and MFU against the bf16 cuBLAS peak measured in the same run.
//   bench_gpu_train d_model=1024 n_layers=12 ... batch=8 precision=bf16 steps=6 [gpu_expert_padding=1.25]
//                   [only=moe|moe-g|dense] [recompute=block]

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_check.h"
#include "src/cuda/device_model.h"
#include "src/cuda/device_peak.h"
#include "src/train/flops.h"
#include "src/train/lr_schedule.h"
#include "src/train/optimizer.h"

namespace {

using namespace moe;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Result {
  double step_s = 0, tokens_per_s = 0, mfu = 0, loss0 = 0, loss_last = 0;
  int64_t params = 0, active = 0;
  double act_gib = 0;
  gpu::DeviceModel::ExpertRowUse rows;
  std::vector<std::pair<std::string, double>> phases;
  std::string attention;  // DeviceModel::attention_kernel()
};

Result run(const Config& c, int64_t batch, int steps, double peak, cudaStream_t s) {
  gpu::DeviceModel dm(c, batch, s);
  gpu::DeviceAdamW opt(dm.table(), c.optim, s);
  std::vector<float> host(size_t(dm.table().total()));
  init_params(dm.table(), host.data(), c.train.seed);
  dm.upload_params(host.data());
  std::vector<int32_t> tokens(size_t(batch * (c.model.seq_len + 1)));
  uint64_t h = 88172645463325252ull;
  const int warmup = 2;
  Result r;
  auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < warmup + steps; ++step) {
    if (step == warmup) {
      MOE_CUDA_CHECK(cudaStreamSynchronize(s));
      t0 = std::chrono::steady_clock::now();
    }
    for (auto& t : tokens) {  // xorshift tokens: a fresh batch per step
      h ^= h << 13, h ^= h >> 7, h ^= h << 17;
      t = int32_t(h % uint64_t(c.model.vocab_size));
    }
    dm.zero_grads();
    const gpu::DeviceLosses l = dm.forward(tokens.data());
    dm.backward(double(batch * c.model.seq_len));
    const double norm = std::sqrt(opt.grad_sq_sum(dm.grads()));
    opt.step(dm.params(), dm.grads(), lr_at(step, 100, 10, c.optim.lr, c.optim.min_lr), clip_scale(norm, 1.0),
             dm.compute_copy());
    const double loss = l.lm_sum / double(batch * c.model.seq_len);
    if (step == 0) r.loss0 = loss;
    r.loss_last = loss;
  }
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  r.step_s = seconds_since(t0) / steps;
  // One more step with the phase breakdown (events), and the optimizer timed on its own.
  dm.enable_phase_times(true);
  dm.zero_grads();
  dm.forward(tokens.data());
  dm.backward(double(batch * c.model.seq_len));
  r.phases = dm.phase_times();
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  const auto t1 = std::chrono::steady_clock::now();
  const double norm = std::sqrt(opt.grad_sq_sum(dm.grads()));
  opt.step(dm.params(), dm.grads(), c.optim.min_lr, clip_scale(norm, 1.0), dm.compute_copy());
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  r.phases.emplace_back("optimizer (norm, AdamW, bf16 copy)", 1e3 * seconds_since(t1));
  r.tokens_per_s = double(batch * c.model.seq_len) / r.step_s;
  r.mfu = train_flops_per_token(c) * r.tokens_per_s / peak;
  r.params = total_params(c);
  r.active = active_params(c);
  r.act_gib = double(dm.activation_bytes()) / (1 << 30);
  r.rows = dm.expert_row_use();
  r.attention = dm.attention_kernel();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::printf("bench_gpu_train: no CUDA device, nothing to measure\n");
    return 0;
  }
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "bench_gpu_train: expected key=value, got '%s'\n", argv[i]);
      return 2;
    }
    kv[a.substr(0, eq)] = a.substr(eq + 1);
  }
  auto num = [&](const char* k, int64_t def) { return kv.count(k) ? std::atoll(kv[k].c_str()) : def; };
  Config c;
  c.model.vocab_size = num("vocab_size", 32000);
  c.model.d_model = num("d_model", 1024);
  c.model.n_layers = num("n_layers", 12);
  c.model.n_heads = num("n_heads", 16);
  c.model.n_kv_heads = num("n_kv_heads", 4);
  c.model.seq_len = num("seq_len", 2048);
  c.model.moe_every = num("moe_every", 1);
  c.moe.num_experts = num("num_experts", 8);
  c.moe.top_k = num("top_k", 2);
  c.moe.expert_hidden = num("expert_hidden", 1408);
  c.model.ffn_hidden = num("ffn_hidden", c.moe.top_k * c.moe.expert_hidden);
  c.train.precision = kv.count("precision") ? kv["precision"] : "bf16";
  if (kv.count("gpu_expert_padding")) c.train.gpu_expert_padding = std::atof(kv["gpu_expert_padding"].c_str());
  if (kv.count("recompute")) c.parallel.recompute = kv["recompute"];
  c.optim.lr = 3e-4;
  c.optim.min_lr = 3e-5;
  const int64_t batch = num("batch", 8);
  const int steps = int(num("steps", 6));
  if (const std::string why = gpu::device_step_unsupported(c); !why.empty()) {
    std::fprintf(stderr, "bench_gpu_train: %s\n", why.c_str());
    return 2;
  }
  cudaDeviceProp prop{};
  MOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t s;
  MOE_CUDA_CHECK(cudaStreamCreate(&s));
  const double peak = gpu::gemm_peak_flops(/*bf16=*/true, s, 8192);  // the trainer's reference, at 8192^3
  std::printf("device: %s; bf16 cuBLAS peak (8192^3 GEMM): %.1f TFLOP/s\n", prop.name, peak / 1e12);
  std::printf("model: d_model %lld, %lld layers, %lld heads (%lld kv), seq %lld, vocab %lld, %lld experts top-%lld "
              "hidden %lld; batch %lld; %s\n",
              (long long)c.model.d_model, (long long)c.model.n_layers, (long long)c.model.n_heads,
              (long long)c.model.n_kv_heads, (long long)c.model.seq_len, (long long)c.model.vocab_size,
              (long long)c.moe.num_experts, (long long)c.moe.top_k, (long long)c.moe.expert_hidden, (long long)batch,
              c.train.precision.c_str());
  Config dense = c, grouped = c;
  dense.model.moe_every = 0;
  grouped.train.gpu_expert_padding = 0;  // the compact layout and the grouped GEMM, for comparison
  const std::string only = kv.count("only") ? kv["only"] : "";  // one variant: moe, moe-g or dense
  bool failed = false;
  for (const auto& [name, cfg] : {std::pair<const char*, const Config*>{"moe", &c}, {"moe-g", &grouped},
                                  {"dense", &dense}}) {
    if (!only.empty() && only != name) continue;
    const Result r = run(*cfg, batch, steps, peak, s);
    std::printf("%-6s params %7.1fM (active %7.1fM)  step %8.1f ms  %9.0f tokens/s  MFU %5.1f%%  activations %5.1f "
                "GiB  loss %.3f -> %.3f\n",
                name, r.params / 1e6, r.active / 1e6, r.step_s * 1e3, r.tokens_per_s, 100 * r.mfu, r.act_gib, r.loss0,
                r.loss_last);
    if (r.rows.routed > 0)
      std::printf("       expert rows (last step): routed %lld, computed %lld (x%.3f), blocked layout in %lld layers "
                  "(one block per expert needs x%.3f)\n",
                  (long long)r.rows.routed, (long long)r.rows.computed, double(r.rows.computed) / double(r.rows.routed),
                  (long long)r.rows.blocked_layers, double(r.rows.one_block_rows) / double(r.rows.routed));
    std::printf("       attention: %s\n", r.attention.c_str());
    std::printf("       phases (ms):");
    for (const auto& [phase, ms] : r.phases) std::printf("  %s %.1f;", phase.c_str(), ms);
    std::printf("\n");
    if (!std::isfinite(r.loss0) || !std::isfinite(r.loss_last)) {  // a broken step is not a measurement
      std::fprintf(stderr, "bench_gpu_train: %s: non-finite loss\n", name);
      failed = true;
    }
  }
  MOE_CUDA_CHECK(cudaStreamDestroy(s));
  return failed ? 1 : 0;
}
