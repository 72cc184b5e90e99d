// Planner memory model: ZeRO sharding, pipeline in-flight micro-batches, recomputation, and the
// agreement of the activation count with the trainer's own accounting.
#include <gtest/gtest.h>

#include <vector>

#include "src/model/transformer.h"
#include "src/parallel/grad_buckets.h"
#include "src/plan/layout.h"
#include "src/plan/memory.h"
#include "src/plan/param_count.h"
#include "src/plan/zero_shape.h"
#include "src/train/model_state.h"
#include "tests/unit/test_plan_fixtures.h"

namespace moe {
namespace {

plan::MemoryBreakdown memory_at(int64_t dp, int64_t zero, const std::string& precision = "bf16") {
  Config c = test::plan_config();
  c.train.precision = precision;
  plan::Layout l;
  l.dp = dp;
  l.zero_stage = zero;
  return plan::estimate_memory(plan::with_layout(c, l), test::plan_hardware(), 1.0);
}

TEST(PlanMemory, ZeroStagesShardAsOneOverDp) {
  for (int64_t dp : {2, 4, 8}) {
    const double r = double(dp);
    Config c = test::plan_config();
    c.train.precision = "bf16";
    plan::Layout l;
    l.dp = dp;
    for (int64_t z = 0; z <= 3; ++z) {
      l.zero_stage = z;
      const plan::ZeroShape zs = plan::zero_shape(plan::with_layout(c, l), 0);
      const plan::MemoryBreakdown one = memory_at(1, z), many = memory_at(dp, z);
      const std::string at = "dp " + std::to_string(dp) + " z " + std::to_string(z);
      // Optimizer state from stage 1; from 2 the gradient shard plus two stages of full
      // gradients; from 3 the weight shard plus the other ranks' parts of two stages.
      EXPECT_DOUBLE_EQ(many.optimizer, z >= 1 ? one.optimizer / r : one.optimizer) << at;
      EXPECT_NEAR(zs.owned * r, double(plan::count_params(c).total()), 1e-6 * zs.owned * r) << at;
      if (z >= 2) {
        EXPECT_DOUBLE_EQ(many.grads, 2 * (zs.owned + zs.grad_pair)) << at;
        EXPECT_LE(many.grads, 2 * (zs.owned + 2 * zs.largest_stage)) << at;  // shard + 2 S
        EXPECT_LT(many.grads, one.grads) << at;
      } else {
        EXPECT_DOUBLE_EQ(many.grads, one.grads) << at;
      }
      if (z >= 3) {
        EXPECT_DOUBLE_EQ(many.params, 2 * (zs.owned + zs.gathered_stage)) << at;
        EXPECT_DOUBLE_EQ(zs.gathered_stage, zs.largest_stage * (1 - 1 / r)) << at;  // no experts split over ep
        EXPECT_DOUBLE_EQ(many.staging,
                         2 * (zs.largest_shared_bucket + zs.largest_prefetched_stage + zs.first_stage_bucket))
            << at;
      } else {
        EXPECT_DOUBLE_EQ(many.params, one.params) << at;
      }
      EXPECT_EQ(many.staging > 0, z >= 1) << at;
    }
  }
  // ZeRO-3 shards the weights but gathers two stages at a time, so it falls towards that.
  const plan::MemoryBreakdown z3a = memory_at(2, 3), z3b = memory_at(8, 3);
  EXPECT_LT(z3b.params, z3a.params);
  EXPECT_GT(z3b.params, memory_at(1, 0).params / 8);
}

// The stages of plan_config alternate dense (0, 2, ..) and MoE (1, 3, ..) blocks between the
// embeddings and the head: the two largest neighbours are a dense and a MoE block.
TEST(PlanMemory, ZeroShapeFollowsTheStagesAndBuckets) {
  Config c = test::plan_config();
  c.parallel.dp = 2;
  c.parallel.zero_stage = 2;
  const auto& m = c.model;
  const double D = double(m.d_model), attn = D * double(m.head_dim()) * double(2 * m.n_heads + 2 * m.n_kv_heads);
  const double dense_block = attn + 2 * D + 3 * D * double(m.ffn_hidden);
  const double E = double(c.moe.num_experts), Fe = double(c.moe.expert_hidden);
  const double moe_block = attn + 2 * D + E * D + E + (E + 1) * 3 * D * Fe;  // + one shared expert
  const plan::ZeroShape z = plan::zero_shape(c, 0);
  EXPECT_DOUBLE_EQ(z.largest_stage, moe_block);
  EXPECT_DOUBLE_EQ(z.grad_pair, dense_block + moe_block);
  EXPECT_DOUBLE_EQ(z.largest_prefetched_stage, moe_block);
  // Stage-aligned buckets never exceed a stage's dense or expert part; the first stage in use
  // order is the embeddings (one bucket).
  EXPECT_GT(z.largest_bucket, 0.0);
  EXPECT_LE(z.largest_bucket, E * 3 * D * Fe);
  EXPECT_DOUBLE_EQ(z.largest_shared_bucket, z.largest_bucket);
  EXPECT_DOUBLE_EQ(z.first_stage_bucket, double(m.vocab_size) * D);
  // Under ep 2 the experts are reduced over edp = 1: only dense buckets are shared.
  c.parallel.ep = 2;
  const plan::ZeroShape ep2 = plan::zero_shape(c, 0);
  EXPECT_LE(ep2.largest_shared_bucket, dense_block);
  EXPECT_GT(ep2.largest_bucket, ep2.largest_shared_bucket);
}

// zero_shape walks the rank's tensors as GradBuckets walks the parameter table: same order,
// sizes, stages and expert flags, for layouts that split them differently.
TEST(PlanMemory, RankTensorsFollowTheParameterTable) {
  for (auto [tp, ep, etp] : {std::tuple{1, 1, 1}, {2, 1, 1}, {2, 2, 2}, {1, 4, 2}}) {
    Config c = test::plan_config();
    c.model.first_dense_layers = 1;
    c.parallel.dp = 8 / tp;
    c.parallel.tp = tp;
    c.parallel.ep = ep;
    c.parallel.etp = etp;
    const ParamTable table = build_param_table(c, ExpertShard{ep, 0, etp, 0}, TensorShard{tp, 0});
    const std::vector<plan::TensorSize> got = plan::rank_tensors(c, 0);
    ASSERT_EQ(got.size(), table.params().size()) << "tp " << tp << " ep " << ep << " etp " << etp;
    for (size_t i = 0; i < got.size(); ++i) {
      const ParamInfo& p = table.params()[i];
      EXPECT_EQ(got[i].numel, p.numel) << p.name;
      EXPECT_EQ(got[i].stage, grad_stage_of(p.name, c.model.n_layers)) << p.name;
      EXPECT_EQ(got[i].expert, p.shard.expert) << p.name;
    }
  }
}

TEST(PlanMemory, MixedPrecisionKeepsFp32MasterWeights) {
  const plan::MemoryBreakdown bf16 = memory_at(1, 0, "bf16"), fp32 = memory_at(1, 0, "fp32");
  const double n = double(plan::count_params(test::plan_config()).total());
  EXPECT_DOUBLE_EQ(bf16.params, 2 * n);
  EXPECT_DOUBLE_EQ(bf16.optimizer, 12 * n);  // master + m + v
  EXPECT_DOUBLE_EQ(fp32.params, 4 * n);
  EXPECT_DOUBLE_EQ(fp32.optimizer, 8 * n);   // m + v
}

TEST(PlanMemory, PipelineKeepsInflightMicrobatches) {
  EXPECT_EQ(plan::inflight_microbatches("1f1b", 4, 8, 0), 4);
  EXPECT_EQ(plan::inflight_microbatches("1f1b", 4, 8, 3), 1);
  EXPECT_EQ(plan::inflight_microbatches("1f1b", 4, 2, 0), 2);
  EXPECT_EQ(plan::inflight_microbatches("gpipe", 4, 8, 3), 8);
  Config c = test::plan_config();
  c.model.moe_every = 1;  // identical layers, so stages differ only in what they keep
  c.model.vocab_size = 8;  // negligible head
  plan::Layout l;
  l.pp = 4;
  l.dp = 2;
  l.microbatches = 8;
  const Config cc = plan::with_layout(c, l);
  const plan::Hardware hw = test::plan_hardware();
  const double first = plan::stage_memory(cc, hw, 1.0, 0).activations;
  const double second = plan::stage_memory(cc, hw, 1.0, 1).activations;
  const double third = plan::stage_memory(cc, hw, 1.0, 2).activations;
  // Stage s keeps pp - s micro-batches: 4, 3, 2 (plus one residual stream each).
  EXPECT_NEAR((first - second) / (second - third), 1.0, 1e-9);
  EXPECT_GT(first, second);
}

TEST(PlanMemory, RecomputationStoresLess) {
  Config c = test::plan_config();
  const plan::Hardware hw = test::plan_hardware();
  auto act = [&](const std::string& rc) {
    plan::Layout l;
    l.recompute = rc;
    return plan::estimate_memory(plan::with_layout(c, l), hw, 1.0).activations;
  };
  EXPECT_LT(act("block"), act("attention"));
  EXPECT_LT(act("attention"), act("none"));
  EXPECT_LT(act("moe"), act("none"));
}

TEST(PlanMemory, AllToAllBuffersFollowTheCapacityFactor) {
  Config c = test::plan_config();
  plan::Layout l;
  l.dp = 4;
  l.ep = 4;
  const plan::Hardware hw = test::plan_hardware();
  const Config cc = plan::with_layout(c, l);
  EXPECT_EQ(plan::estimate_memory(plan::with_layout(c, plan::Layout{}), hw, 1.0).a2a_buffers, 0.0);
  const double even = plan::estimate_memory(cc, hw, 1.0).a2a_buffers;
  const double cap2 = plan::estimate_memory(cc, hw, 2.0).a2a_buffers;
  EXPECT_GT(even, 0.0);
  EXPECT_DOUBLE_EQ(cap2 / even, 1.5);  // send (1) + receive (factor)
}

TEST(PlanMemory, ActivationsMatchTheTrainersAccounting) {
  // The CPU kernels keep attention scores; stage 0 of pp 1 holds everything the trainer holds,
  // plus the logits' gradient (N x V fp32) that the trainer's figure leaves out.
  Config c = test::plan_config();
  c.train.precision = "fp32";
  c.train.batch_size = 2;
  c.model.seq_len = 16;
  c.moe.num_shared_experts = 0;  // the trainer's figure leaves shared experts out too
  plan::Hardware hw = test::plan_hardware();
  hw.stores_attention_scores = true;
  ModelState m(c);
  init_params(m.table, m.params.data(), 1);
  Transformer net(c, c.train.batch_size);
  std::vector<int32_t> tokens(size_t(c.train.batch_size * (c.model.seq_len + 1)));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 7) % size_t(c.model.vocab_size));
  net.forward(tokens.data(), m.p, {});
  const double planned = plan::estimate_memory(c, hw, 1.0).activations;
  const double logits_grad = double(c.train.batch_size * c.model.seq_len * c.model.vocab_size) * 4.0;
  EXPECT_NEAR((planned - logits_grad) / double(net.activation_bytes()), 1.0, 0.02);
}

}  // namespace
}  // namespace moe
