// `moe profile` figures on a hand-built run directory: imbalance, cv, hottest/coldest, trend,
// advice, the metrics reader, and the JSON / text / HTML forms.
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "src/cli/commands/profile_report.h"
#include "src/core/error.h"
#include "src/train/load_balance_recorder.h"
#include "src/train/profile_summary.h"
#include "tests/unit/test_profile_fixtures.h"

namespace moe {
namespace {

using ProfileSummary = test::ProfileTempDir;
using test::layer_stats;

// 8 recorded steps, E = 4. Layer 0 starts skewed ({40,20,20,20}) and ends even; layer 3 starts
// even and ends skewed to expert 3 ({10,10,10,70}) while dropping 10 of 100 assignments per step.
void write_run(const test::ProfileTempDir& t) {
  {
    LoadBalanceRecorder rec(t.file("load_balance.h5"), {0, 3}, 4, 1, 0);
    for (int64_t step = 1; step <= 8; ++step) {
      const bool early = step <= 4;
      LayerLoadStats a = layer_stats(early ? std::vector<int64_t>{40, 20, 20, 20} : std::vector<int64_t>{25, 25, 25, 25});
      LayerLoadStats b = layer_stats(early ? std::vector<int64_t>{25, 25, 25, 25} : std::vector<int64_t>{10, 10, 10, 70},
                                     10, 1.2);
      PhaseTimes pt;
      pt.experts = 0.005;
      pt.step = 0.02;
      rec.record(step, {&a, &b}, pt, {});
    }
  }
  // A run resumed at step 4 appends rows for steps 5.. again: the later rows win.
  std::ofstream m(t.file("metrics.jsonl"));
  for (int s : {2, 4, 6}) m << nlohmann::json{{"step", s}, {"loss", 9.0}, {"tokens_per_s", 1.0}}.dump() << "\n";
  const double loss[] = {5.0, 4.0, 3.0, 3.5};
  for (int i = 0; i < 4; ++i)
    m << nlohmann::json{{"step", 2 * (i + 1)}, {"loss", loss[i]}, {"tokens_per_s", 1000.0 * (i + 1)}}.dump() << "\n";
}

TEST_F(ProfileSummary, FiguresOfAHandBuiltRun) {
  write_run(*this);
  const profile::RunProfile rp = profile::load_run_profile(dir_.string());
  const profile::ProfileSummary& s = rp.summary;
  ASSERT_TRUE(s.profiled);
  EXPECT_EQ(s.rows, 8);
  ASSERT_EQ(s.layers.size(), 2u);

  const profile::LayerSummary& a = s.layers[0];
  EXPECT_EQ(a.layer, 0);
  EXPECT_NEAR(a.run.max_over_mean, (4 * 1.6 + 4 * 1.0) / 8, 1e-12);
  EXPECT_NEAR(a.run.cv, 4 * std::sqrt(75.0) / 25.0 / 8, 1e-12);
  EXPECT_NEAR(a.max_over_mean_peak, 1.6, 1e-12);
  EXPECT_EQ(a.hottest.expert, 0);
  EXPECT_NEAR(a.hottest.share, 260.0 / 800.0, 1e-12);
  EXPECT_EQ(a.coldest.expert, 1);
  EXPECT_NEAR(a.coldest.share, 180.0 / 800.0, 1e-12);
  EXPECT_NEAR(a.first_quarter.max_over_mean, 1.6, 1e-12);
  EXPECT_NEAR(a.last_quarter.max_over_mean, 1.0, 1e-12);
  EXPECT_EQ(a.trend, "improving");
  EXPECT_TRUE(a.advice.empty());
  EXPECT_NEAR(a.entropy_max, std::log(4.0), 1e-12);

  const profile::LayerSummary& b = s.layers[1];
  EXPECT_EQ(b.layer, 3);
  EXPECT_EQ(b.trend, "worsening");
  EXPECT_NEAR(b.last_quarter.max_over_mean, 2.8, 1e-12);
  EXPECT_NEAR(b.run.drop_frac, 0.1, 1e-12);
  EXPECT_NEAR(b.entropy, 1.2, 1e-12);
  EXPECT_EQ(b.hottest.expert, 3);
  EXPECT_NEAR(b.hottest.share, 380.0 / 800.0, 1e-12);
  ASSERT_EQ(b.advice.size(), 3u);
  EXPECT_NE(b.advice[0].find("max/mean 2.80 > 1.5"), std::string::npos) << b.advice[0];
  EXPECT_NE(b.advice[0].find("moe.aux_loss_coeff"), std::string::npos);
  EXPECT_NE(b.advice[1].find("moe.capacity_factor to 2.73"), std::string::npos) << b.advice[1];
  EXPECT_NE(b.advice[2].find("expert 3 is hot: 47.5% of tokens, 1.9x"), std::string::npos) << b.advice[2];
  // Skewed rows {10,10,10,70} of 100: no more than 7 of 800 assignments over capacity needs a
  // capacity of 69 = ceil(2.73 * 25); over the last quarter (2 rows) 70 = ceil(2.77 * 25).
  EXPECT_DOUBLE_EQ(b.capacity_factor_1pct, 2.73);
  EXPECT_DOUBLE_EQ(b.capacity_factor_1pct_last_quarter, 2.77);
  ASSERT_EQ(b.hot.size(), 1u);
  EXPECT_EQ(b.hot[0].expert, 3);
  EXPECT_TRUE(b.dead.empty() && b.cold.empty());
  EXPECT_FALSE(b.bias.recorded) << "no bias in these rows";

  EXPECT_NEAR(s.phase_mean_seconds[3], 0.005, 1e-15);
  EXPECT_EQ(s.phase_names[3], "experts");

  EXPECT_EQ(s.loss.points, 4);
  EXPECT_EQ(s.loss.steps, (std::vector<int64_t>{2, 4, 6, 8}));
  EXPECT_DOUBLE_EQ(s.loss.first, 5.0);
  EXPECT_DOUBLE_EQ(s.loss.min, 3.0);
  EXPECT_EQ(s.loss.min_step, 6);
  EXPECT_DOUBLE_EQ(s.loss.last, 3.5);
  EXPECT_DOUBLE_EQ(s.loss.tokens_per_s, 3000.0) << "mean after the first logged step";
}

TEST_F(ProfileSummary, HeatmapIsShareOverEvenShare) {
  write_run(*this);
  const profile::RunProfile rp = profile::load_run_profile(dir_.string());
  std::vector<int64_t> steps;
  const auto heat = profile::load_heatmap(rp.load_balance, 1, 2, &steps);
  ASSERT_EQ(heat.size(), 4u);
  ASSERT_EQ(heat[3].size(), 2u);
  EXPECT_EQ(steps, (std::vector<int64_t>{4, 8}));
  EXPECT_NEAR(heat[3][0], 1.0, 1e-12);
  EXPECT_NEAR(heat[3][1], 2.8, 1e-12);
  EXPECT_NEAR(heat[0][1], 0.4, 1e-12);
  EXPECT_STREQ(cli::shade(heat[3][1]), "█");
  EXPECT_STREQ(cli::shade(heat[0][1]), "░");
  EXPECT_STREQ(cli::shade(1.0), "▒");
  EXPECT_STREQ(cli::shade(0.0), " ");
}

TEST_F(ProfileSummary, JsonHasTheFigures) {
  write_run(*this);
  const nlohmann::json j = nlohmann::json::parse(cli::profile_json(profile::load_run_profile(dir_.string())).dump());
  EXPECT_TRUE(j["profiling"].get<bool>());
  EXPECT_DOUBLE_EQ(j["loss"]["min"].get<double>(), 3.0);
  const auto& lb = j["load_balance"];
  EXPECT_EQ(lb["rows"].get<int64_t>(), 8);
  EXPECT_EQ(lb["num_experts"].get<int64_t>(), 4);
  ASSERT_EQ(lb["layers"].size(), 2u);
  EXPECT_EQ(lb["layers"][1]["layer"].get<int64_t>(), 3);
  EXPECT_NEAR(lb["layers"][1]["trend"]["last_quarter"]["max_over_mean"].get<double>(), 2.8, 1e-12);
  EXPECT_EQ(lb["layers"][1]["trend"]["direction"].get<std::string>(), "worsening");
  EXPECT_EQ(lb["layers"][0]["hottest"]["expert"].get<int64_t>(), 0);
  EXPECT_NEAR(lb["layers"][0]["cv"].get<double>(), std::sqrt(75.0) / 25.0 / 2, 1e-12);
  EXPECT_NEAR(lb["layers"][1]["drop_frac"].get<double>(), 0.1, 1e-12);
  EXPECT_NEAR(lb["phase_mean_seconds"]["step"].get<double>(), 0.02, 1e-15);
  EXPECT_FALSE(lb.contains("a2a_total_bytes"));
}

TEST_F(ProfileSummary, TextAndHtmlHaveEverySection) {
  write_run(*this);
  const profile::RunProfile rp = profile::load_run_profile(dir_.string());
  const std::string text = cli::profile_text(rp);
  for (const char* part : {"loss      first 5.0000 (step 2)", "layer 0", "layer 3", "hottest expert 3", "improving",
                           "worsening", "advice: max/mean 2.80 > 1.5", "e3   |", "phases"})
    EXPECT_NE(text.find(part), std::string::npos) << "missing '" << part << "' in\n" << text;
  const std::string html = cli::profile_html(rp);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://www.w3.org/2000/svg"), html.find("http"));  // the SVG namespace is the only URL
}

TEST_F(ProfileSummary, RunWithoutLoadBalanceStillSummarizesTheLoss) {
  std::ofstream(file("metrics.jsonl")) << R"({"step": 10, "loss": 4.5, "tokens_per_s": 100})" << "\n";
  const profile::RunProfile rp = profile::load_run_profile(dir_.string());
  EXPECT_FALSE(rp.summary.profiled);
  EXPECT_DOUBLE_EQ(rp.summary.loss.last, 4.5);
  EXPECT_NE(cli::profile_text(rp).find("profiling was off"), std::string::npos);
  EXPECT_TRUE(cli::profile_json(rp)["load_balance"].is_null());
}

TEST_F(ProfileSummary, MissingOrDamagedInputsAreDataErrors) {
  EXPECT_THROW(profile::load_run_profile(file("nope")), DataError);
  EXPECT_THROW(profile::load_run_profile(dir_.string()), DataError) << "no metrics.jsonl";
  std::ofstream(file("metrics.jsonl")) << "{\"step\": 1, \"loss\": 2}\n{garbage\n{\"step\": 2, \"loss\": 2}\n";
  try {
    profile::load_run_profile(dir_.string());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2"), std::string::npos) << e.what();
  }
  std::ofstream(file("metrics.jsonl")) << "{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"lo";  // crash mid-line
  EXPECT_EQ(profile::load_run_profile(dir_.string()).summary.loss.points, 1);
  std::ofstream(file("load_balance.h5")) << "truncated";
  EXPECT_THROW(profile::load_run_profile(dir_.string()), DataError);
}

TEST(ProfileSparkline, ScalesMinToMaxAndResamples) {
  EXPECT_EQ(cli::sparkline({1, 2, 3, 4, 5, 6, 7, 8}, 60), "▁▂▃▄▅▆▇█");
  EXPECT_EQ(cli::sparkline({8, 8, 1, 1}, 2), "█▁");
  EXPECT_EQ(cli::sparkline({}, 10), "");
}

}  // namespace
}  // namespace moe
