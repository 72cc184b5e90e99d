// Planner parameter counts: the published model shapes and agreement with the parameter table.
#include <gtest/gtest.h>

#include "src/plan/param_count.h"
#include "src/train/flops.h"
#include "tests/unit/test_plan_fixtures.h"

namespace moe {
namespace {

TEST(PlanParams, MixtralMatchesPublishedTotals) {
  const Config c = load_config(MOE_SOURCE_DIR "/configs/models/mixtral_8x7b.yaml", {});
  const plan::ParamCounts p = plan::count_params(c);
  // Mistral AI: 46.7B parameters, 12.9B used per token.
  EXPECT_NEAR(double(p.total()) / 46.7e9, 1.0, 0.01);
  EXPECT_NEAR(double(p.active(c.moe.top_k, c.moe.num_experts)) / 12.9e9, 1.0, 0.01);
}

TEST(PlanParams, DeepseekLikeCountIsTheDocumentedApproximation) {
  const Config c = load_config(MOE_SOURCE_DIR "/configs/models/deepseek_v3_like.yaml", {});
  const plan::ParamCounts p = plan::count_params(c);
  // docs/planning.md: 672.1B total against the published 671B (3 dense layers, MHA in place of MLA).
  EXPECT_NEAR(double(p.total()) / 671e9, 1.0, 0.01);
  const double active = double(p.active(c.moe.top_k, c.moe.num_experts)) / 1e9;
  std::printf("deepseek-v3-like: %.2fB total, %.2fB active\n", double(p.total()) / 1e9, active);
  EXPECT_NEAR(active / 37.0, 1.0, 0.05);
}

TEST(PlanParams, CountsMatchTheParameterTable) {
  Config c = test::plan_config();
  EXPECT_EQ(plan::count_params(c).total(), total_params(c));
  c.model.moe_every = 1;
  c.moe.num_shared_experts = 0;
  EXPECT_EQ(plan::count_params(c).total(), total_params(c));
  c.model.moe_every = 0;
  EXPECT_EQ(plan::count_params(c).total(), total_params(c));
}

TEST(PlanParams, StagesPartitionTheModel) {
  Config c = test::plan_config();
  c.parallel.pp = 4;
  int64_t sum = 0, moe_layers = 0;
  for (int64_t s = 0; s < 4; ++s) {
    const plan::StageParams sp = plan::stage_params(c, s);
    sum += sp.dense + sp.expert;
    moe_layers += sp.moe_layers;
    EXPECT_EQ(sp.layers, 2);
  }
  EXPECT_EQ(sum, plan::count_params(c).total());
  EXPECT_EQ(moe_layers, plan::count_params(c).moe_layers);
}

TEST(PlanParams, ExpertsSplitOverEpAndEtp) {
  Config c = test::plan_config();
  const plan::StageParams one = plan::stage_params(c, 0);
  c.parallel.dp = 8;
  c.parallel.ep = 4;
  c.parallel.etp = 2;
  const plan::StageParams split = plan::stage_params(c, 0);
  EXPECT_EQ(split.expert * 8, one.expert);
  EXPECT_EQ(split.dense, one.dense);  // dp and ep do not split the dense weights
}

}  // namespace
}  // namespace moe
