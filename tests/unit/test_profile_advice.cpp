// The advice figures of `moe profile` on hand-made counts: the capacity factor that drops < 1%,
// dead experts, a balancing bias that moves too slowly, and `--compare`.
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "src/cli/commands/profile_report.h"
#include "src/train/load_balance_recorder.h"
#include "src/train/profile_summary.h"
#include "tests/unit/test_profile_fixtures.h"

namespace moe {
namespace {

using ProfileAdvice = test::ProfileTempDir;

TEST(ProfileCapacity, SmallestFactorUnderOnePercentOfDrops) {
  // 99 even rows of 100 assignments and one {40,20,20,20}: 1% of 10000 = 100. cf 0.97 gives a
  // capacity of ceil(24.25) = 25, dropping only the 15 of the odd row; cf 0.96 gives 24 and drops
  // 99 * 4 + 16 = 412.
  std::vector<int64_t> counts;
  for (int r = 0; r < 99; ++r) counts.insert(counts.end(), {25, 25, 25, 25});
  counts.insert(counts.end(), {40, 20, 20, 20});
  EXPECT_EQ(profile::dropped_at(counts, 4, 1.0), 15);
  EXPECT_EQ(profile::dropped_at(counts, 4, 0.96), 412);
  EXPECT_DOUBLE_EQ(profile::min_capacity_factor(counts, 4, 0.01), 0.97);
  // One row {6,2,0,0}: no drop at all needs ceil(cf * 2) >= 6, so cf = 2.51.
  EXPECT_DOUBLE_EQ(profile::min_capacity_factor({6, 2, 0, 0}, 4, 0.01), 2.51);
  EXPECT_EQ(profile::min_capacity_factor({0, 0}, 2, 0.01), 0.0);
}

// A layer of E = 4 whose expert 0 takes half the tokens in every row while its bias falls by
// `rate` each step (or alternates when !one_way); expert 3 gets nothing in the second half.
profile::LoadBalanceData skewed(double rate, bool one_way) {
  profile::LoadBalanceData lb;
  lb.num_experts = 4;
  lb.every = 1;
  lb.moe_layers = {0};
  const int64_t S = 16;
  for (int64_t s = 0; s < S; ++s) {
    lb.step.push_back(s + 1);
    const bool late = s >= S / 2;
    const std::vector<int64_t> c = late ? std::vector<int64_t>{50, 30, 20, 0} : std::vector<int64_t>{50, 20, 20, 10};
    lb.tokens_per_expert.insert(lb.tokens_per_expert.end(), c.begin(), c.end());
    lb.dropped.push_back(0);
    lb.entropy.push_back(1.0);
    lb.aux_loss.push_back(0);
    lb.z_loss.push_back(0);
    lb.max_over_mean.push_back(2.0);
    lb.cv.push_back(0.5);
    const float b0 = one_way ? -float(rate) * float(s + 1) : (s % 2 ? -float(rate) : 0.0f);
    lb.bias.insert(lb.bias.end(), {b0, 0.0f, 0.0f, float(rate) * float(s + 1)});
  }
  return lb;
}

TEST_F(ProfileAdvice, SlowBiasAndDeadExpertAreReportedWithFigures) {
  std::ofstream(file("config.yaml")) << "moe:\n  bias_update_rate: 1.0e-4\n  capacity_factor: 0.0\n";
  const profile::LoadBalanceData lb = skewed(1e-4, true);
  const profile::ProfileSummary s = profile::summarize(dir_.string(), {}, &lb);
  ASSERT_EQ(s.layers.size(), 1u);
  const profile::LayerSummary& l = s.layers[0];
  EXPECT_DOUBLE_EQ(s.bias_update_rate, 1e-4);
  EXPECT_EQ(l.dead, (std::vector<int64_t>{3}));
  ASSERT_TRUE(l.bias.recorded);
  EXPECT_EQ(l.bias.expert, 0);
  EXPECT_EQ(l.bias.steps, 7);  // rows 8..15 hold steps 9..16
  EXPECT_NEAR(l.bias.moved, -7e-4, 1e-9);
  EXPECT_NEAR(l.bias.per_step, 1e-4, 1e-9);
  EXPECT_DOUBLE_EQ(l.bias.one_way, 1.0);
  EXPECT_TRUE(l.bias.too_small);
  std::string all;
  for (const std::string& a : l.advice) all += a + "\n";
  // Expert 3: 80 of 1600 assignments (5%, under a quarter of the even 25%), none in the last quarter.
  EXPECT_NE(all.find("expert 3 is nearly unused (5.0% of tokens, even share 25.0%)"), std::string::npos) << all;
  EXPECT_NE(all.find("no token at all in the last quarter (dead)"), std::string::npos) << all;
  EXPECT_NE(all.find("the bias of expert 0 fell in 100% of the recorded updates over the last 7 steps"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("moe.bias_update_rate 0.0001 is too small for this imbalance; try 0.0004"), std::string::npos)
      << all;
}

TEST_F(ProfileAdvice, OscillatingBiasIsNotTooSmall) {
  const profile::LoadBalanceData lb = skewed(1e-3, false);
  const profile::ProfileSummary s = profile::summarize(dir_.string(), {}, &lb);
  EXPECT_TRUE(s.layers[0].bias.recorded);
  EXPECT_FALSE(s.layers[0].bias.too_small);
  EXPECT_TRUE(std::isnan(s.bias_update_rate)) << "no config.yaml";
}

// A run directory with metrics and a profile of one layer with constant counts.
void write_small_run(const std::string& dir, std::vector<int64_t> counts, double loss) {
  std::filesystem::create_directories(dir);
  {
    LoadBalanceRecorder rec(dir + "/load_balance.h5", {0}, 4, 1, 0);
    LayerLoadStats a = test::layer_stats(counts, 2, 1.1);
    for (int64_t step = 1; step <= 4; ++step) rec.record(step, {&a}, {}, {});
  }
  std::ofstream m(dir + "/metrics.jsonl");
  for (int s = 1; s <= 4; ++s)
    m << nlohmann::json{{"step", s}, {"loss", loss + 1.0 / s}, {"tokens_per_s", 100.0}}.dump() << "\n";
}

TEST_F(ProfileAdvice, CompareShowsBothRunsSideBySide) {
  write_small_run(file("a"), {40, 20, 20, 20}, 3.0);
  write_small_run(file("b"), {25, 25, 25, 25}, 2.5);
  const profile::RunProfile a = profile::load_run_profile(file("a")), b = profile::load_run_profile(file("b"));
  const nlohmann::json j = cli::profile_compare_json(a, b);
  EXPECT_EQ(j["runs"][0], file("a"));
  EXPECT_DOUBLE_EQ(j["loss"]["last"][0].get<double>(), 3.25);
  EXPECT_DOUBLE_EQ(j["loss"]["last"][1].get<double>(), 2.75);
  ASSERT_EQ(j["layers"].size(), 1u);
  EXPECT_DOUBLE_EQ(j["layers"][0]["max_over_mean"][0].get<double>(), 1.6);
  EXPECT_DOUBLE_EQ(j["layers"][0]["max_over_mean"][1].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["layers"][0]["drop_frac"][1].get<double>(), 0.02);
  const std::string text = cli::profile_compare_text(a, b);
  for (const char* part : {"A: ", "B: ", "loss last", "3.2500", "2.7500", "-0.5000", "layer 0", "max/mean",
                           "1.600", "1.000", "-0.600", "entropy", "drop %"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
}

}  // namespace
}  // namespace moe
