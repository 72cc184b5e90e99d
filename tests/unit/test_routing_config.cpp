// The moe.* routing keys: parsed, round-tripped, and the combinations that make no sense refused
// with a message that names the key.
#include <gtest/gtest.h>

#include "src/core/error.h"
#include "src/train/config.h"

namespace moe {
namespace {

std::string error_of(const std::string& moe_yaml) {
  try {
    parse_config("moe:\n" + moe_yaml, "configs/r.yaml", {});
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RoutingConfig, KeysParseAndRoundTrip) {
  Config c = parse_config(
      "moe:\n  num_experts: 8\n  top_k: 3\n  router: sigmoid\n  router_scale: 2.5\n  router_jitter: 0.01\n"
      "  num_groups: 4\n  topk_groups: 2\n  aux_loss_type: seq\n",
      "configs/r.yaml", {"moe.router_scale=1.5"});
  EXPECT_EQ(c.moe.router, "sigmoid");
  EXPECT_EQ(c.moe.router_scale, 1.5);
  EXPECT_EQ(c.moe.router_jitter, 0.01);
  EXPECT_EQ(c.moe.num_groups, 4);
  EXPECT_EQ(c.moe.topk_groups, 2);
  EXPECT_EQ(c.moe.aux_loss_type, "seq");
  Config back = parse_config(dump_config(c), "dump", {});
  EXPECT_EQ(back.moe.router_scale, 1.5);
  EXPECT_EQ(back.moe.aux_loss_type, "seq");
  EXPECT_EQ(back.moe.score_order, "softmax_then_topk");
}

TEST(RoutingConfig, BadCombinationsNameTheKey) {
  EXPECT_NE(error_of("  router: expert_choise\n").find("moe.router: \"expert_choise\" is not a valid choice"),
            std::string::npos);
  EXPECT_NE(error_of("  aux_loss_type: global\n").find("moe.aux_loss_type"), std::string::npos);
  EXPECT_NE(error_of("  router_jitter: 1.0\n").find("moe.router_jitter: 1.0 is out of range"), std::string::npos);
  EXPECT_NE(error_of("  router_scale: 0\n").find("moe.router_scale"), std::string::npos);
  EXPECT_NE(error_of("  num_experts: 6\n  num_groups: 4\n").find("moe.num_experts: 6 is not divisible by moe.num_groups"),
            std::string::npos);
  EXPECT_NE(error_of("  num_groups: 2\n  topk_groups: 3\n").find("moe.topk_groups: 3 is larger"), std::string::npos);
  // 8 experts in 4 groups of 2, one group per token: at most 2 experts reachable.
  EXPECT_NE(error_of("  num_experts: 8\n  top_k: 3\n  num_groups: 4\n  topk_groups: 1\n").find("moe.top_k: 3"),
            std::string::npos);
  EXPECT_NE(error_of("  router: sigmoid\n  score_order: topk_then_softmax\n").find("moe.score_order"),
            std::string::npos);
  EXPECT_NE(error_of("  router: expert_choice\n  bias_update_rate: 0.001\n").find("moe.bias_update_rate"),
            std::string::npos);
  EXPECT_NE(error_of("  router: expert_choice\n  num_groups: 2\n").find("moe.num_groups"), std::string::npos);
  EXPECT_NE(error_of("  router: expert_choice\n  num_groups: 2\n").find("configs/r.yaml"), std::string::npos);
}

}  // namespace
}  // namespace moe
