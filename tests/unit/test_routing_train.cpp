// A short training run with each routing variant lowers the loss (the in-process trainer).
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

// lm_loss of the first and last logged steps of RUN_DIR/metrics.jsonl.
std::pair<double, double> first_last(const std::string& run_dir) {
  std::ifstream f(run_dir + "/metrics.jsonl");
  std::vector<double> l;
  for (std::string line; std::getline(f, line);) l.push_back(nlohmann::json::parse(line)["lm_loss"].get<double>());
  return {l.empty() ? 0.0 : l.front(), l.empty() ? 0.0 : l.back()};
}

void expect_learns(const std::string& name, const std::function<void(Config&)>& set) {
  static const std::string dir = test::fresh_dir("routing_train");
  static const std::string data = test::make_corpus(dir);
  Config c = test::small_train_config(data);
  c.train.steps = 15;
  set(c);
  TrainOptions o;
  o.run_dir = dir + "/" + name;
  o.quiet = true;
  TrainResult r = train(c, o, test::test_world());
  EXPECT_EQ(r.steps_done, 15) << name;
  auto [first, last] = first_last(o.run_dir);
  EXPECT_GT(first, 5.0) << name;  // ~ln(260) at init
  EXPECT_LT(last, first - 1.0) << name;
}

TEST(RoutingTrain, SigmoidWithBiasBalancing) {
  expect_learns("sigmoid", [](Config& c) {
    c.moe.router = "sigmoid";
    c.moe.router_scale = 2.5;
    c.moe.bias_update_rate = 1e-3;
    c.moe.aux_loss_type = "none";
  });
}

TEST(RoutingTrain, GroupLimitedSeqAux) {
  expect_learns("groups", [](Config& c) {
    c.moe.num_experts = 8;
    c.moe.num_groups = 4;
    c.moe.topk_groups = 2;
    c.moe.aux_loss_type = "seq";
  });
}

TEST(RoutingTrain, TopkThenSoftmaxWithCapacity) {
  expect_learns("topk_then_softmax", [](Config& c) {
    c.moe.score_order = "topk_then_softmax";
    c.moe.capacity_factor = 1.0;
    c.moe.drop_policy = "position";
    c.moe.num_shared_experts = 1;
  });
}

TEST(RoutingTrain, ExpertChoice) {
  expect_learns("expert_choice", [](Config& c) { c.moe.router = "expert_choice"; });
}

}  // namespace
}  // namespace moe
