// Planner output and inputs: fit reasons, the JSON and table forms, hardware profiles, and the
// expert imbalance read from a run directory.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "src/core/error.h"
#include "src/plan/planner.h"
#include "src/plan/report.h"
#include "tests/unit/test_plan_fixtures.h"

namespace moe {
namespace {

constexpr double kGiB = 1073741824.0;

TEST(PlanFit, ReasonNamesTheLargestPartAndAFix) {
  plan::MemoryBreakdown m;
  m.params = 12 * kGiB;
  m.grads = 12 * kGiB;
  m.optimizer = 48 * kGiB;
  m.activations = 20.1 * kGiB;
  plan::Layout l;
  EXPECT_EQ(plan::fit_reason(l, m, 80 * kGiB),
            "needs 92.1 GiB > 80.0 GiB memory: optimizer state 48.0 GiB; try zero_stage 1");
  EXPECT_EQ(plan::fit_reason(l, m, 100 * kGiB), "");
  m.optimizer = 4 * kGiB;
  m.activations = 70 * kGiB;
  EXPECT_NE(plan::fit_reason(l, m, 80 * kGiB).find("activations 70.0 GiB; try recompute block"), std::string::npos);
}

TEST(PlanFit, MixtralOnOneNodeWithoutZeroDoesNotFit) {
  plan::PlanInputs in;
  in.config = load_config(MOE_SOURCE_DIR "/configs/models/mixtral_8x7b.yaml", {});
  in.hardware = plan::load_hardware(MOE_SOURCE_DIR "/configs/hardware/h100_node.yaml");
  plan::Layout l;
  l.dp = 8;
  l.microbatches = 64;  // one sequence per micro-batch: activations are small
  const plan::LayoutEstimate e = plan::estimate_layout(in, l);
  EXPECT_FALSE(e.fits);
  // 46.7B parameters x 12 bytes of fp32 master weights and moments dwarf the rest.
  EXPECT_NE(e.reason.find("optimizer state"), std::string::npos) << e.reason;
  EXPECT_NE(e.reason.find("try zero_stage 1"), std::string::npos) << e.reason;
}

plan::PlanInputs small_inputs() {
  plan::PlanInputs in;
  in.config = test::plan_config();
  in.hardware = test::plan_hardware();
  in.hardware.memory_bytes = 0.05 * kGiB;  // small enough that some layouts do not fit
  return in;
}

TEST(PlanReport, JsonParsesAndIsRanked) {
  const plan::PlanInputs in = small_inputs();
  const plan::PlanResult r = plan::make_plan(in, 8);
  ASSERT_FALSE(r.fitting.empty());
  ASSERT_FALSE(r.not_fitting.empty());
  const nlohmann::json j = nlohmann::json::parse(plan::plan_json(in, r, 5).dump());
  EXPECT_EQ(j["world"], 8);
  EXPECT_EQ(j["considered"], r.considered);
  ASSERT_EQ(j["fitting"].size(), 5u);
  double last = 0;
  for (const auto& e : j["fitting"]) {
    const double t = e["step_s"]["total"];
    EXPECT_GE(t, last);
    last = t;
    EXPECT_LE(double(e["memory_bytes"]["total"]), in.hardware.memory_bytes);
    EXPECT_EQ(e["layout"]["dp"].get<int64_t>() * e["layout"]["tp"].get<int64_t>() * e["layout"]["pp"].get<int64_t>(), 8);
    EXPECT_GT(double(e["tokens_per_s"]), 0.0);
  }
  for (const auto& e : j["not_fitting"]) EXPECT_NE(e["reason"].get<std::string>().find("needs"), std::string::npos);
}

TEST(PlanReport, TableListsLayoutsAndReasons) {
  const plan::PlanInputs in = small_inputs();
  const std::string t = plan::plan_table(in, plan::make_plan(in, 4), 3);
  EXPECT_NE(t.find("tokens/s"), std::string::npos);
  EXPECT_NE(t.find("  1  dp"), std::string::npos);
  EXPECT_NE(t.find("do not fit"), std::string::npos);
}

TEST(PlanHardware, ProfilesRoundTripAndLoad) {
  const plan::Hardware h = test::plan_hardware();
  const plan::Hardware back = plan::parse_hardware(plan::dump_hardware(h, "test"), "rt.yaml");
  EXPECT_EQ(back.devices_per_node, h.devices_per_node);
  EXPECT_NEAR(back.memory_bytes / h.memory_bytes, 1.0, 1e-5);
  EXPECT_NEAR(back.inter_node.latency / h.inter_node.latency, 1.0, 1e-5);
  for (const char* f : {"h100_node", "h200_node"}) {
    const plan::Hardware p = plan::load_hardware(std::string(MOE_SOURCE_DIR "/configs/hardware/") + f + ".yaml");
    EXPECT_EQ(p.devices_per_node, 8);
    EXPECT_GT(p.memory_bytes, 70 * kGiB);
  }
}

TEST(PlanHardware, BadProfilesNameTheKey) {
  const std::string good = plan::dump_hardware(test::plan_hardware(), "");
  auto message = [](const std::string& text) -> std::string {
    try {
      plan::parse_hardware(text, "bad_hw.yaml");
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  std::string m = message(good + "nvlink: 5\n");
  EXPECT_NE(m.find("nvlink"), std::string::npos) << m;
  EXPECT_NE(m.find("bad_hw.yaml"), std::string::npos) << m;
  std::string missing = good.substr(0, good.find("memory_gib"));
  missing += good.substr(good.find("\n", good.find("memory_gib")) + 1);
  EXPECT_NE(message(missing).find("memory_gib: is missing"), std::string::npos) << message(missing);
  std::string negative = good;
  negative.replace(negative.find("memory_bandwidth: "), 18, "memory_bandwidth: -");
  EXPECT_NE(message(negative).find("memory_bandwidth"), std::string::npos);
}

TEST(PlanProfile, ImbalanceIsTheMedianOfARun) {
  const auto dir = std::filesystem::temp_directory_path() / "moe_plan_profile_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "metrics.jsonl");
    f << "{\"step\":1,\"max_over_mean\":3.0}\n{\"step\":2,\"max_over_mean\":1.25}\n{\"step\":3,\"max_over_mean\":1.5}\n";
  }
  EXPECT_DOUBLE_EQ(plan::imbalance_from_run(dir.string()), 1.5);
  std::filesystem::remove_all(dir);
  EXPECT_THROW(plan::imbalance_from_run(dir.string()), DataError);
}

}  // namespace
}  // namespace moe
