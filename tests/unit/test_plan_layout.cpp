// Planner layout enumeration (the config's divisibility rules) and the step-time model.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "src/plan/collectives.h"
#include "src/plan/layout.h"
#include "src/plan/step_time.h"
#include "tests/unit/test_plan_fixtures.h"

namespace moe {
namespace {

TEST(PlanLayout, EnumerationRespectsDivisibility) {
  Config c = test::plan_config();
  c.model.n_kv_heads = 2;       // tp can be 1 or 2 only
  c.moe.num_experts = 4;        // ep in 1, 2, 4
  c.train.batch_size = 8;
  const auto layouts = plan::enumerate_layouts(c, 16);
  ASSERT_FALSE(layouts.empty());
  std::set<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> grids;
  for (const plan::Layout& l : layouts) {
    EXPECT_EQ(l.world(), 16);
    EXPECT_EQ(c.model.n_kv_heads % l.tp, 0) << plan::describe(l);
    EXPECT_EQ(c.moe.num_experts % l.ep, 0) << plan::describe(l);
    EXPECT_EQ(c.model.n_layers % l.pp, 0) << plan::describe(l);
    EXPECT_EQ(c.train.batch_size % (l.dp * l.microbatches), 0) << plan::describe(l);
    EXPECT_EQ((l.dp * l.tp) % (l.ep * l.etp), 0) << plan::describe(l);
    EXPECT_TRUE(l.etp == 1 || l.etp == l.tp || l.tp == 1) << plan::describe(l);
    EXPECT_NO_THROW(validate_layout(plan::with_layout(c, l), 16)) << plan::describe(l);
    grids.insert({l.dp, l.tp, l.pp, l.ep, l.etp});
  }
  // dp 16 cannot split a batch of 8; pp 16 cannot split 8 layers; both tp 1 and tp 2 appear.
  for (const auto& g : grids) {
    EXPECT_LE(std::get<0>(g), 8);
    EXPECT_LE(std::get<2>(g), 8);
  }
  EXPECT_TRUE(grids.count({8, 2, 1, 4, 2}));   // ep 4 x etp 2 (= tp) folds into dp 8 x tp 2
  EXPECT_TRUE(grids.count({16, 1, 1, 2, 8}) || grids.count({8, 1, 2, 2, 4}));  // etp over dp ranks (tp 1)
  // The trainer runs etp over the tp group or, with tp 1, over dp ranks: nothing else is listed.
  EXPECT_FALSE(grids.count({8, 2, 1, 4, 4}));
  EXPECT_FALSE(grids.count({8, 2, 1, 1, 4}));
  EXPECT_TRUE(grids.count({2, 1, 8, 2, 1}));
  EXPECT_FALSE(grids.count({4, 4, 1, 1, 1}));  // tp 4 does not divide 2 kv heads
  // Every combination of zero stage and recompute mode is listed for a valid grid.
  int64_t n = 0;
  for (const plan::Layout& l : layouts)
    if (l.dp == 8 && l.tp == 2 && l.pp == 1 && l.ep == 4 && l.etp == 2 && l.microbatches == 1) ++n;
  EXPECT_EQ(n, 4 * 4);
}

TEST(PlanLayout, BubbleFormula) {
  EXPECT_DOUBLE_EQ(plan::bubble_fraction(1, 8), 0.0);
  EXPECT_DOUBLE_EQ(plan::bubble_fraction(4, 1), 0.75);
  EXPECT_DOUBLE_EQ(plan::bubble_fraction(4, 12), 3.0 / 15.0);
  // The step model's bubble is that fraction of the pipeline's time.
  Config c = test::plan_config();
  c.model.moe_every = 1;
  c.model.vocab_size = 8;
  plan::Layout l;
  l.pp = 4;
  l.dp = 2;
  l.microbatches = 8;
  const plan::StepBreakdown s = plan::estimate_step(plan::with_layout(c, l), test::plan_hardware(), 1.0);
  const double pipeline = s.compute + s.recompute + s.imbalance + s.tp_comm + s.ep_comm + s.pp_comm;
  EXPECT_NEAR(s.bubble / (s.bubble + pipeline), plan::bubble_fraction(4, 8), 1e-12);
}

TEST(PlanLayout, CollectivesFollowTheRingFormulas) {
  const plan::Link l{100e9, 1e-6};
  const double b = 1e9;
  EXPECT_DOUBLE_EQ(plan::allreduce_time(b, 1, l), 0.0);
  EXPECT_DOUBLE_EQ(plan::allreduce_time(b, 4, l), 6 * 1e-6 + 2.0 * 3 / 4 * b / 100e9);
  EXPECT_DOUBLE_EQ(plan::alltoall_time(b, 8, l), 7 * 1e-6 + 7.0 / 8 * b / 100e9);
  const plan::Hardware hw = test::plan_hardware();
  EXPECT_EQ(plan::link_for_span(hw, 8).bandwidth, hw.intra_node.bandwidth);
  EXPECT_EQ(plan::link_for_span(hw, 16).bandwidth, hw.inter_node.bandwidth);
}

TEST(PlanLayout, ImbalanceSlowsTheExperts) {
  Config c = test::plan_config();
  const plan::Hardware hw = test::plan_hardware();
  const plan::StepBreakdown even = plan::estimate_step(c, hw, 1.0), skewed = plan::estimate_step(c, hw, 1.5);
  EXPECT_EQ(even.imbalance, 0.0);
  EXPECT_GT(skewed.imbalance, 0.0);
  EXPECT_NEAR(skewed.total() - even.total(), skewed.imbalance, 1e-12);
}

TEST(PlanLayout, DataParallelCommunicationGrowsWithZeroThree) {
  Config c = test::plan_config();
  plan::Layout l;
  l.dp = 8;
  auto dp_comm = [&](int64_t z) {
    l.zero_stage = z;
    return plan::estimate_step(plan::with_layout(c, l), test::plan_hardware(), 1.0).dp_comm;
  };
  EXPECT_GT(dp_comm(0), 0.0);
  EXPECT_GT(dp_comm(3), dp_comm(1));
}

}  // namespace
}  // namespace moe
