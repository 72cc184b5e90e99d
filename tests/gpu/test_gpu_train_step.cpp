// The whole training step on the GPU (src/cuda/device_model.h) against the CPU model
// (src/model/transformer.h): the same config, initial weights and tokens give the same losses,
// routing counts and gradients of every tensor, and the same weights after AdamW steps.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/flash_attention.cuh"
#include "moe/expert_padding.h"
#include "src/cuda/device_train_step.h"
#include "src/model/transformer.h"
#include "src/train/micro_batches.h"
#include "src/train/optimizer.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/train_step_fixtures.h"

namespace moe::gpu_test {
namespace {

struct CpuStep {
  StepLosses losses;
  std::vector<float> grads;
  std::vector<LayerLoadStats> stats;
};

CpuStep cpu_step(const Config& c, int64_t B, const std::vector<float>& params, const std::vector<int32_t>& tokens) {
  const ParamTable table = build_param_table(c);
  std::vector<float> p = params, g(size_t(table.total()), 0.0f);
  Transformer tr(c, B);
  const ModelParams pv = bind_params(c, table, p.data()), gv = bind_params(c, table, g.data());
  CpuStep out;
  out.losses = tr.forward(tokens.data(), pv, SumReducer{});
  tr.backward(pv, gv, double(B * c.model.seq_len));
  out.grads = g;
  for (const LayerLoadStats* s : tr.load_stats()) out.stats.push_back(*s);
  return out;
}

// The same initial weights (seed 11, after `edit`) and tokens (seed 5) through the CPU model in
// fp32 and the GPU step in c's precision.
struct BothSteps {
  ParamTable table;
  CpuStep ref;
  GpuStep got;
};
BothSteps both_steps(const Config& c, int64_t B,
                     const std::function<void(const ParamTable&, std::vector<float>&)>& edit = {}) {
  BothSteps r{build_param_table(c), {}, {}};
  std::vector<float> params(size_t(r.table.total()));
  init_params(r.table, params.data(), 11);
  if (edit) edit(r.table, params);
  const auto tokens = tokens_for(c, B, 5);
  Config ref_c = c;
  ref_c.train.precision = "fp32";
  r.ref = cpu_step(ref_c, B, params, tokens);
  r.got = gpu_step(c, B, params, tokens);
  return r;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return dot / std::sqrt(na * nb);
}

// bf16 GEMM operands against the fp32 CPU step: the loss within 1%, gradients to bf16 accuracy (a
// few ulps deep).
void expect_bf16_close(const BothSteps& r) {
  EXPECT_NEAR(r.got.losses.lm_sum, r.ref.losses.lm_sum, 1e-2 * std::fabs(r.ref.losses.lm_sum));
  EXPECT_GT(cosine(r.got.grads, r.ref.grads), 0.999);
  std::string where;
  EXPECT_LT(worst_tensor_err(r.table, r.got.grads, r.ref.grads, &where), 0.1) << "worst tensor: " << where;
}

// The expert GEMM layouts (train.gpu_expert_padding): 0 = compact + grouped GEMM; 8 = room for
// the blocked layout with one block per expert at this size.
class GpuTrainStepLayout : public ::testing::TestWithParam<double> {};

TEST_P(GpuTrainStepLayout, Fp32ForwardBackwardMatchesCpu) {
  MOE_REQUIRE_GPU();
  Config c = small_config("fp32");
  c.train.gpu_expert_padding = GetParam();
  const int64_t B = 3;
  const auto [table, ref, got] = both_steps(c, B);
  const gpu::DeviceLosses& l = got.losses;
  const std::vector<float>& g = got.grads;

  EXPECT_NEAR(l.lm_sum, ref.losses.lm_sum, 1e-5 * std::fabs(ref.losses.lm_sum));
  EXPECT_NEAR(l.aux, ref.losses.aux, 1e-6 * std::fabs(ref.losses.aux) + 1e-9);
  EXPECT_NEAR(l.z, ref.losses.z, 1e-5 * std::fabs(ref.losses.z) + 1e-9);
  ASSERT_EQ(got.stats.size(), ref.stats.size());
  for (size_t i = 0; i < ref.stats.size(); ++i) {
    EXPECT_EQ(got.stats[i].tokens_per_expert, ref.stats[i].tokens_per_expert);
    EXPECT_NEAR(got.stats[i].entropy, ref.stats[i].entropy, 1e-5);
  }
  std::string where;
  const double err = worst_tensor_err(table, g, ref.grads, &where);
  EXPECT_LT(err, 2e-4) << "worst tensor: " << where;
  EXPECT_EQ(int64_t(got.token_losses.size()), B * c.model.seq_len);
  // The layout the parameter asks for was the one run.
  const int64_t routed = B * c.model.seq_len * c.moe.top_k;
  EXPECT_EQ(got.row_use.routed, routed);
  EXPECT_EQ(got.row_use.blocked_layers, GetParam() > 0 ? 1 : 0);
  if (GetParam() > 0) EXPECT_EQ(got.row_use.computed % kExpertPadRows, 0);
  else EXPECT_EQ(got.row_use.computed, routed);
}

TEST_P(GpuTrainStepLayout, Bf16StepStaysCloseToFp32Cpu) {
  MOE_REQUIRE_GPU();
  Config c = small_config("bf16");
  c.train.gpu_expert_padding = GetParam();
  const BothSteps r = both_steps(c, 3);
  expect_bf16_close(r);
  EXPECT_EQ(r.got.row_use.blocked_layers, GetParam() > 0 ? 1 : 0);
}

// bf16 with the flash kernels in the step (T % 64 == 0, head size 64: small_config's shapes take the
// cuBLAS attention): flash forward, its backward overwriting dq/dk/dv, RoPE's backward in place;
// T % 128 == 0, so the step first times both block shapes and runs the faster.
TEST(GpuTrainStep, Bf16FlashAttentionStepStaysCloseToFp32Cpu) {
  MOE_REQUIRE_GPU();
  Config c = small_config("bf16");
  c.model.d_model = 128;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 1;
  c.model.seq_len = 128;
  c.model.ffn_hidden = 96;
  c.moe.expert_hidden = 64;
  ASSERT_TRUE(cuda::flash_attention_supported(c.model.seq_len, c.model.d_model / c.model.n_heads));
  expect_bf16_close(both_steps(c, 2));
}

// fp32 steps repeat bit for bit (the MoE combine and un-permutation sum in a fixed order, no
// atomics): the same losses and gradients, but for the token embeddings' (embedding_backward adds
// repeated tokens with float atomics).
TEST_P(GpuTrainStepLayout, Fp32StepRepeatsBitForBit) {
  MOE_REQUIRE_GPU();
  Config c = small_config("fp32");
  c.train.gpu_expert_padding = GetParam();
  const int64_t B = 3;
  const ParamTable table = build_param_table(c);
  const std::vector<float> params = initial_params(table, 11);
  const auto tokens = tokens_for(c, B, 5);
  const GpuStep a = gpu_step(c, B, params, tokens), b = gpu_step(c, B, params, tokens);
  EXPECT_EQ(a.losses.lm_sum, b.losses.lm_sum);
  EXPECT_EQ(a.losses.aux, b.losses.aux);
  EXPECT_EQ(a.token_losses, b.token_losses);
  for (const ParamInfo& p : table.params()) {
    if (p.name == "tok_embeddings.weight") continue;
    int64_t differ = 0;
    for (int64_t i = p.offset; i < p.offset + p.numel; ++i) differ += a.grads[size_t(i)] != b.grads[size_t(i)];
    EXPECT_EQ(differ, 0) << p.name;
  }
}

// parallel.recompute block keeps only each layer's input and runs the layer's forward again in
// the backward: the same losses, statistics and gradients bit for bit (but the token embeddings',
// summed with float atomics), in fp32 and bf16, with less activation memory.
TEST_P(GpuTrainStepLayout, RecomputeBlockGivesTheSameStepBitForBit) {
  MOE_REQUIRE_GPU();
  for (const char* precision : {"fp32", "bf16"}) {
    Config c = small_config(precision);
    c.model.n_layers = 3;  // dense, MoE, dense: the workspace serves both kinds
    c.moe.bias_update_rate = 1e-3;
    c.train.gpu_expert_padding = GetParam();
    const int64_t B = 3;
    const ParamTable table = build_param_table(c);
    const std::vector<float> params = initial_params(table, 11);
    const auto tokens = tokens_for(c, B, 5);
    const GpuStep kept = gpu_step(c, B, params, tokens);
    Config rc = c;
    rc.parallel.recompute = "block";
    ASSERT_EQ(gpu::device_step_unsupported(rc), "");
    const GpuStep re = gpu_step(rc, B, params, tokens);
    EXPECT_EQ(re.losses.lm_sum, kept.losses.lm_sum) << precision;
    EXPECT_EQ(re.losses.aux, kept.losses.aux) << precision;
    EXPECT_EQ(re.losses.z, kept.losses.z) << precision;
    ASSERT_EQ(re.stats.size(), kept.stats.size());
    EXPECT_EQ(re.stats[0].tokens_per_expert, kept.stats[0].tokens_per_expert) << precision;
    EXPECT_EQ(re.stats[0].bias, kept.stats[0].bias) << precision;
    EXPECT_EQ(re.row_use.computed, kept.row_use.computed) << precision;
    for (const ParamInfo& p : table.params()) {
      if (p.name == "tok_embeddings.weight") continue;
      int64_t differ = 0;
      for (int64_t i = p.offset; i < p.offset + p.numel; ++i) differ += re.grads[size_t(i)] != kept.grads[size_t(i)];
      EXPECT_EQ(differ, 0) << precision << " " << p.name;
    }
    EXPECT_LT(re.activation_bytes, kept.activation_bytes) << precision;
  }
}

INSTANTIATE_TEST_SUITE_P(ExpertLayouts, GpuTrainStepLayout, ::testing::Values(0.0, 8.0));

// A skewed routing (a router bias puts expert 0 in every token's top 2): one block per expert does
// not fit twice the routed rows, so the blocked layout gives expert 0 several blocks; the step
// still matches the CPU in fp32 and bf16.
TEST(GpuTrainStep, SkewedRoutingTakesSeveralBlocksAndMatchesCpu) {
  MOE_REQUIRE_GPU();
  for (const char* precision : {"fp32", "bf16"}) {
    Config c = small_config(precision);
    c.moe.bias_update_rate = 1e-3;  // gives the router its bias tensor
    c.train.gpu_expert_padding = 2.0;
    const int64_t B = 8;  // 96 tokens, 192 routed rows: 384 buffer rows, expert 0 holds 96
    const auto [table, ref, got] = both_steps(c, B, [](const ParamTable& t, std::vector<float>& p) {
      p[size_t(t.params()[size_t(t.index_of("layers.1.moe.router.bias"))].offset)] = 10.0f;
    });
    ASSERT_EQ(ref.stats[0].tokens_per_expert[0], B * c.model.seq_len) << "expert 0 takes every token";
    EXPECT_EQ(got.row_use.blocked_layers, 1) << precision;
    EXPECT_GT(got.row_use.one_block_rows, int64_t(2.0 * got.row_use.routed)) << precision;
    EXPECT_GT(got.row_use.computed, got.row_use.routed) << precision;
    EXPECT_LE(got.row_use.computed, int64_t(2.0 * got.row_use.routed)) << precision;
    EXPECT_EQ(got.stats[0].tokens_per_expert, ref.stats[0].tokens_per_expert) << precision;
    std::string where;
    const double err = worst_tensor_err(table, got.grads, ref.grads, &where);
    EXPECT_LT(err, std::string(precision) == "fp32" ? 2e-4 : 0.1) << precision << ", worst tensor: " << where;
    EXPECT_NEAR(got.losses.lm_sum, ref.losses.lm_sum, (std::string(precision) == "fp32" ? 1e-5 : 1e-2) *
                                                          std::fabs(ref.losses.lm_sum));
  }
}

TEST(GpuTrainStep, Fp32AdamWStepsTrackCpu) {
  MOE_REQUIRE_GPU();
  Config c = small_config("fp32");
  c.optim.weight_decay = 0.1;
  const int64_t B = 2;
  const ParamTable table = build_param_table(c);
  const std::vector<float> params = initial_params(table, 3);

  std::vector<float> cpu_p = params, cpu_g(params.size());
  Transformer tr(c, B);
  AdamW opt(table, c.optim);
  gpu::DeviceModel dm(c, B, stream());
  gpu::DeviceAdamW dopt(dm.table(), c.optim, stream());
  dm.upload_params(params.data());
  for (int step = 0; step < 3; ++step) {
    const auto tokens = tokens_for(c, B, 100 + step);
    std::fill(cpu_g.begin(), cpu_g.end(), 0.0f);
    const ModelParams pv = bind_params(c, table, cpu_p.data()), gv = bind_params(c, table, cpu_g.data());
    const StepLosses cl = tr.forward(tokens.data(), pv, SumReducer{});
    tr.backward(pv, gv, double(B * c.model.seq_len));
    const double cpu_norm = std::sqrt(opt.grad_sq_sum(cpu_g.data()));
    opt.step(cpu_p.data(), cpu_g.data(), 1e-2, clip_scale(cpu_norm, 0.5));

    dm.zero_grads();
    const gpu::DeviceLosses gl = dm.forward(tokens.data());
    dm.backward(double(B * c.model.seq_len));
    const double gpu_norm = std::sqrt(dopt.grad_sq_sum(dm.grads()));
    dopt.step(dm.params(), dm.grads(), 1e-2, clip_scale(gpu_norm, 0.5));
    dm.refresh_compute_copy();
    EXPECT_NEAR(gl.lm_sum, cl.lm_sum, 2e-5 * std::fabs(cl.lm_sum)) << "step " << step;
    EXPECT_NEAR(gpu_norm, cpu_norm, 1e-4 * cpu_norm) << "step " << step;
  }
  // AdamW divides each gradient element by its own running RMS, so elements whose gradient is at
  // rounding level (rarely routed expert units) can move by a sizeable fraction of lr on one side
  // only; the losses above (computed with the updated weights) are the tight check, this one
  // bounds every weight within 2e-3 of its tensor's largest weight (measured: 8.8e-4).
  std::vector<float> p(params.size());
  dm.download_params(p.data());
  std::string where;
  EXPECT_LT(worst_tensor_err(table, p, cpu_p, &where), 2e-3) << "worst tensor: " << where;
}

// parallel.microbatches 2 (gradient accumulation): two forwards of half the batch into the same
// gradients, as the CPU step defines it (src/train/train_step.cpp): the aux and z losses per
// micro-batch with their coefficients over m, the routing counts summed, and the balancing bias
// updated once from the step's counts.
TEST(GpuTrainStep, MicroBatchesAccumulateAsOnTheCpu) {
  MOE_REQUIRE_GPU();
  Config c = small_config("fp32");
  c.parallel.microbatches = 2;
  c.moe.bias_update_rate = 1e-3;
  ASSERT_EQ(gpu::device_step_unsupported(c), "");
  const int64_t B = 4, m = 2, mb = B / m, T = c.model.seq_len, E = c.moe.num_experts;
  const ParamTable table = build_param_table(c);
  const std::vector<float> params = initial_params(table, 11);
  const float* bias = params.data() + table.params()[size_t(table.index_of("layers.1.moe.router.bias"))].offset;
  const auto tokens = tokens_for(c, B, 5);
  const Config mc = micro_batch_config(c);

  // CPU: a model of one micro-batch, run twice into the same gradients.
  std::vector<float> cpu_p = params, cpu_g(params.size(), 0.0f);
  const ModelParams pv = bind_params(mc, table, cpu_p.data()), gv = bind_params(mc, table, cpu_g.data());
  Transformer tr(mc, mb);
  double lm = 0, aux = 0, z = 0;
  std::vector<int64_t> counts(size_t(E), 0);
  for (int64_t j = 0; j < m; ++j) {
    const StepLosses l = tr.forward(tokens.data() + j * mb * (T + 1), pv, SumReducer{});
    tr.backward(pv, gv, double(B * T));
    lm += l.lm_sum;
    aux += l.aux;
    z += l.z;
    for (int64_t e = 0; e < E; ++e) counts[size_t(e)] += tr.load_stats()[0]->tokens_per_expert[size_t(e)];
  }
  const std::vector<float> next_bias = next_balancing_bias(bias, counts, B * T * c.moe.top_k, c.moe.bias_update_rate);

  gpu::DeviceModel dm(mc, mb, stream());
  dm.upload_params(params.data());
  dm.zero_grads();
  const gpu::DeviceStepOutput got = gpu::device_forward_backward(c, dm, tokens.data(), B, double(B * T), {});
  std::vector<float> g(params.size());
  dm.download_grads(g.data());
  EXPECT_NEAR(got.losses.lm_sum, lm, 1e-5 * std::fabs(lm));
  EXPECT_NEAR(got.losses.aux, aux, 1e-6 * std::fabs(aux));
  EXPECT_NEAR(got.losses.z, z, 1e-5 * std::fabs(z));
  ASSERT_EQ(got.stats.size(), 1u);
  EXPECT_EQ(got.stats[0].tokens_per_expert, counts);
  EXPECT_EQ(got.stats[0].assignments, B * T * c.moe.top_k);
  EXPECT_EQ(got.stats[0].bias, next_bias);
  std::string where;
  EXPECT_LT(worst_tensor_err(table, g, cpu_g, &where), 2e-4) << "worst tensor: " << where;

  // The whole batch in one forward has another aux loss (its statistics span both halves), so
  // the comparison above is of the accumulation, not of one big forward.
  gpu::DeviceModel whole(c, B, stream());
  whole.upload_params(params.data());
  EXPECT_GT(std::fabs(whole.forward(tokens.data()).aux - aux), 1e-4 * std::fabs(aux));
}

TEST(GpuTrainStep, UnsupportedLayoutsAreNamed) {
  Config c = small_config("fp32");
  EXPECT_EQ(gpu::device_step_unsupported(c), "");
  c.parallel.tp = 2;
  EXPECT_NE(gpu::device_step_unsupported(c).find("parallel.tp"), std::string::npos);
  c = small_config("fp32");
  c.parallel.recompute = "moe";
  EXPECT_NE(gpu::device_step_unsupported(c).find("parallel.recompute"), std::string::npos);
  c = small_config("fp16");
  EXPECT_NE(gpu::device_step_unsupported(c).find("fp16"), std::string::npos);
  c = small_config("fp32");
  c.moe.capacity_factor = 1.25;
  EXPECT_NE(gpu::device_step_unsupported(c).find("capacity_factor"), std::string::npos);
}

}  // namespace
}  // namespace moe::gpu_test
