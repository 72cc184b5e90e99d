// In-process training: the loss falls, and an interrupted run resumes bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

std::vector<std::string> metric_lines(const std::string& run_dir) {
  std::ifstream f(run_dir + "/metrics.jsonl");
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

std::vector<float> final_params(const Config& c, const std::string& run_dir) {
  ModelState m(c);
  load_weights(ckpt::resolve(run_dir), m);
  return {m.params.begin(), m.params.end()};
}

TEST(Train, LossFalls) {
  auto& world = test::test_world();
  const std::string dir = test::fresh_dir("train_loss");
  Config c = test::small_train_config(test::make_corpus(dir));
  c.train.steps = 40;
  TrainOptions o;
  o.run_dir = dir + "/run";
  o.quiet = true;
  TrainResult r = train(c, o, world);
  EXPECT_EQ(r.steps_done, 40);
  auto lines = metric_lines(o.run_dir);
  ASSERT_EQ(lines.size(), 40u);
  const double first = nlohmann::json::parse(lines.front())["lm_loss"].get<double>();
  const double last = nlohmann::json::parse(lines.back())["lm_loss"].get<double>();
  EXPECT_GT(first, 5.0);  // ~ln(260) at init
  EXPECT_LT(last, 3.0);   // 14 words: far below the byte-uniform entropy
}

TEST(Train, ResumeIsBitExact) {
  auto& world = test::test_world();
  const std::string dir = test::fresh_dir("train_resume");
  Config c = test::small_train_config(test::make_corpus(dir));
  TrainOptions straight;
  straight.run_dir = dir + "/straight";
  straight.quiet = true;
  train(c, straight, world);

  TrainOptions interrupted = straight;
  interrupted.run_dir = dir + "/resumed";
  interrupted.exit_after = 10;
  EXPECT_EQ(train(c, interrupted, world).steps_done, 10);
  interrupted.exit_after = 0;
  EXPECT_EQ(train(c, interrupted, world).steps_done, 20);

  std::vector<float> a = final_params(c, straight.run_dir), b = final_params(c, interrupted.run_dir);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // Every logged step after the resume point has the same loss, to the last bit.
  auto la = metric_lines(straight.run_dir), lb = metric_lines(interrupted.run_dir);
  ASSERT_EQ(la.size(), 20u);
  ASSERT_EQ(lb.size(), 20u);
  for (size_t i = 0; i < 20; ++i)
    EXPECT_EQ(nlohmann::json::parse(la[i])["loss"].get<double>(), nlohmann::json::parse(lb[i])["loss"].get<double>())
        << "step " << i + 1;
}

}  // namespace
}  // namespace moe
