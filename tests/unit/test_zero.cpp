// ZeRO stages 1 and 2 on an in-process group of 3 ranks: the partition covers every bucket float
// once, the stage-2 reduce-scatter gives the summed gradients, and sharded AdamW plus the parameter
// all-gather reproduce the unsharded AdamW (parameters, moments, gradient norm).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "src/comm/thread_communicator.h"
#include "src/parallel/grad_buckets.h"
#include "src/parallel/zero.h"
#include "src/parallel/zero_optimizer.h"
#include "src/train/optimizer.h"
#include "tests/unit/slice_fixtures.h"

namespace moe {
namespace {

void on_ranks(int n, const std::function<void(comm::Communicator&)>& body) { test::on_ranks(n, body, "dp"); }

// Odd sizes so that buckets do not divide by 3; one tensor frozen, one not trainable.
ParamTable small_table() {
  ParamTable t;
  t.add("tok_embeddings.weight", {5, 7}, InitKind::normal);
  t.add("layers.0.norm", {13}, InitKind::ones, /*weight_decay=*/false);
  t.add("layers.0.bias", {3}, InitKind::zeros, true, /*trainable=*/false);
  t.add("layers.0.w", {4, 9}, InitKind::normal);
  t.add("layers.0.frozen", {2, 2}, InitKind::normal);
  t.add("output.weight", {11, 3}, InitKind::normal);
  return t;
}

float base_grad(int64_t i) { return float(std::sin(0.37 * double(i)) * 0.5); }

TEST(Zero, PartitionCoversEveryBucketFloatOnce) {
  on_ranks(3, [](comm::Communicator& dp) {
    const ParamTable t = small_table();
    GradBuckets gb(t, 1, dp, dp, 30 * 4);
    ASSERT_GT(gb.buckets().size(), 2u);
    ZeroPartition zp(gb.buckets(), dp, dp);
    std::vector<float> ones(size_t(zp.shard_floats()), 1.0f), full(size_t(t.total()), 0.0f);
    zp.place(ones.data(), full.data());
    dp.allreduce_sum(full.data(), t.total());
    std::vector<float> in_bucket(full.size(), 0.0f);
    for (const GradBucket& b : gb.buckets()) std::fill(in_bucket.begin() + b.begin, in_bucket.begin() + b.end, 1.0f);
    EXPECT_EQ(full, in_bucket);
    // Each rank owns about a third: floor(n / 3) floats, and the last rank the tail too.
    for (const ZeroRange& z : zp.ranges()) {
      const int64_t n = gb.buckets()[size_t(z.bucket)].end - gb.buckets()[size_t(z.bucket)].begin;
      EXPECT_EQ(z.owned, n / 3 + (dp.rank() == 2 ? n % 3 : 0));
    }
  });
}

TEST(Zero, ShardedAdamWMatchesFullAdamW) {
  OptimConfig cfg;
  cfg.weight_decay = 0.1;
  const std::vector<bool> frozen = {false, false, false, false, true, false};
  on_ranks(3, [&](comm::Communicator& dp) {
    const ParamTable t = small_table();
    std::vector<float> params(size_t(t.total())), ref_params(size_t(t.total())), grads(size_t(t.total()));
    init_params(t, params.data(), 7);
    ref_params = params;
    std::vector<float> ref_grads(grads.size());
    GradBuckets gb(t, 1, dp, dp, 30 * 4);
    ZeroPartition zp(gb.buckets(), dp, dp);
    std::vector<float> shard(size_t(zp.shard_floats())), staging;
    gb.reduce_scatter_into(&zp, shard.data());
    AdamW ref(t, cfg, frozen);
    ZeroAdamW zero(t, cfg, frozen, zp);
    for (int step = 0; step < 3; ++step) {
      for (size_t i = 0; i < grads.size(); ++i) {
        grads[i] = base_grad(int64_t(i) + step) * float(dp.rank() + 1);  // ranks sum to 6x
        ref_grads[i] = base_grad(int64_t(i) + step) * 6.0f;
      }
      for (int64_t stage = 1; stage >= -1; --stage) gb.on_stage_ready(stage, grads.data());
      gb.finish(grads.data());
      double sq = zero.grad_sq_sum(shard.data(), /*sharded=*/true);
      dp.allreduce_sum(&sq, 1);
      const double ref_sq = ref.grad_sq_sum(ref_grads.data());
      EXPECT_NEAR(sq, ref_sq, 1e-9 * ref_sq);
      const double clip = clip_scale(std::sqrt(ref_sq), 0.5);  // clipping active
      zero.step(params.data(), shard.data(), true, 1e-2, clip);
      zp.gather(params.data(), staging);
      ref.step(ref_params.data(), ref_grads.data(), 1e-2, clip);
      for (size_t i = 0; i < params.size(); ++i) ASSERT_FLOAT_EQ(params[i], ref_params[i]) << "float " << i;
    }
    // Checkpoint path: the gathered moments equal the full AdamW's, and load back into a shard.
    AdamW full(t, cfg, frozen);
    zero.to_full(full, staging);
    EXPECT_EQ(full.steps_done(), 3);
    for (size_t i = 0; i < t.params().size(); ++i) {
      ASSERT_EQ(full.updates(i), ref.updates(i));
      for (int64_t k = 0; full.updates(i) && k < t.params()[i].numel; ++k) {
        ASSERT_FLOAT_EQ(full.m_of(i)[k], ref.m_of(i)[k]);
        ASSERT_FLOAT_EQ(full.v_of(i)[k], ref.v_of(i)[k]);
      }
    }
    ZeroAdamW reloaded(t, cfg, frozen, zp);
    reloaded.from_full(full);
    AdamW again(t, cfg, frozen);
    reloaded.to_full(again, staging);
    EXPECT_EQ(again.steps_done(), 3);
    for (size_t i = 0; i < t.params().size(); ++i)
      for (int64_t k = 0; again.updates(i) && k < t.params()[i].numel; ++k) ASSERT_EQ(again.m_of(i)[k], full.m_of(i)[k]);
  });
}

TEST(Zero, StageOneReadsOwnedRangesOfTheFullGradient) {
  OptimConfig cfg;
  on_ranks(2, [&](comm::Communicator& dp) {
    const ParamTable t = small_table();
    std::vector<float> grads(size_t(t.total()));
    for (size_t i = 0; i < grads.size(); ++i) grads[i] = base_grad(int64_t(i));
    GradBuckets gb(t, 1, dp, dp, 30 * 4);
    ZeroPartition zp(gb.buckets(), dp, dp);
    ZeroAdamW zero(t, cfg, {}, zp);
    AdamW ref(t, cfg);
    double sq = zero.grad_sq_sum(grads.data(), /*sharded=*/false);
    dp.allreduce_sum(&sq, 1);
    EXPECT_NEAR(sq, ref.grad_sq_sum(grads.data()), 1e-12);
    EXPECT_LT(zero.state_floats(), ref.state_floats());  // about half each
  });
}

}  // namespace
}  // namespace moe
