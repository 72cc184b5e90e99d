// fp16 dynamic loss scaling (src/train/loss_scaler.h): skip and back-off on a non-finite step,
// growth after the window, the same decision on every rank, and an exact resume in training.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>

#include <nlohmann/json.hpp>

#include "src/comm/thread_communicator.h"
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/loss_scaler.h"
#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(LossScaler, SkipsBacksOffAndGrows) {
  auto group = comm::make_thread_group(1);
  LossScaler s(true, 1024.0, 3);
  EXPECT_FALSE(s.should_skip(2.0, 1.0, *group[0]));
  EXPECT_FALSE(s.should_skip(2.0, 1.0, *group[0]));
  EXPECT_EQ(s.scale(), 1024.0);
  EXPECT_TRUE(s.should_skip(2.0, kInf, *group[0]));  // overflow: skip, halve, restart the window
  EXPECT_EQ(s.scale(), 512.0);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_TRUE(s.should_skip(std::nan(""), 1.0, *group[0]));
  EXPECT_EQ(s.scale(), 256.0);
  EXPECT_FALSE(s.should_skip(2.0, 1.0, *group[0]));
  EXPECT_FALSE(s.should_skip(2.0, 1.0, *group[0]));
  EXPECT_EQ(s.scale(), 256.0);
  EXPECT_FALSE(s.should_skip(2.0, 1.0, *group[0]));  // third good step in a row: double
  EXPECT_EQ(s.scale(), 512.0);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_EQ(s.skipped_steps(), 2);
}

TEST(LossScaler, OffUnderFp32AndBf16) {
  auto group = comm::make_thread_group(1);
  Config c;
  for (const char* p : {"fp32", "bf16"}) {
    c.train.precision = p;
    LossScaler s(c);
    EXPECT_FALSE(s.enabled());
    EXPECT_EQ(s.scale(), 1.0);
    EXPECT_FALSE(s.should_skip(kInf, kInf, *group[0]));  // the trainer's non-finite error handles it
  }
  c.train.precision = "fp16";
  c.train.loss_scale_init = 8.0;
  EXPECT_EQ(LossScaler(c).scale(), 8.0);
}

// Below scale 1 the scaler stops skipping: the non-finite values are not a range problem.
TEST(LossScaler, GivesUpBelowScaleOne) {
  auto group = comm::make_thread_group(1);
  LossScaler s(true, 2.0, 10);
  EXPECT_TRUE(s.should_skip(kInf, kInf, *group[0]));
  EXPECT_EQ(s.scale(), 1.0);
  EXPECT_FALSE(s.should_skip(kInf, kInf, *group[0]));
  EXPECT_EQ(s.scale(), 1.0);
}

// Only rank 1 sees the overflow; every rank skips and keeps the same scale.
TEST(LossScaler, EveryRankDecidesTheSame) {
  const int n = 3;
  auto group = comm::make_thread_group(n);
  std::vector<int> skipped(n);
  std::vector<double> scales(n);
  std::vector<std::thread> ts;
  for (int r = 0; r < n; ++r)
    ts.emplace_back([&, r] {
      LossScaler s(true, 64.0, 100);
      skipped[size_t(r)] = s.should_skip(1.0, r == 1 ? kInf : 1.0, *group[size_t(r)]);
      skipped[size_t(r)] += 2 * s.should_skip(1.0, 1.0, *group[size_t(r)]);
      scales[size_t(r)] = s.scale();
    });
  for (auto& t : ts) t.join();
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(skipped[size_t(r)], 1) << "rank " << r;
    EXPECT_EQ(scales[size_t(r)], 32.0) << "rank " << r;
  }
}

TEST(LossScaler, StateRoundTrips) {
  auto group = comm::make_thread_group(1);
  LossScaler a(true, 128.0, 5), b(true, 65536.0, 5);
  a.should_skip(1.0, kInf, *group[0]);
  a.should_skip(1.0, 1.0, *group[0]);
  b.restore(a.state());
  EXPECT_EQ(b.scale(), 64.0);
  EXPECT_EQ(b.good_steps(), 1);
  EXPECT_EQ(b.skipped_steps(), 1);
}

std::vector<nlohmann::json> metrics(const std::string& run_dir) {
  std::ifstream f(run_dir + "/metrics.jsonl");
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// fp16 training with an injected overflow at step 3: the step is skipped (parameters unchanged),
// the scale halves and then grows again; a run interrupted after step 6 resumes exactly (scaler
// state from the checkpoint).
TEST(LossScalerTrain, InjectedOverflowSkipsAndResumesExactly) {
  auto& world = test::test_world();
  const std::string dir = test::fresh_dir("loss_scaler_train");
  Config c = test::small_train_config(test::make_corpus(dir));
  c.train.steps = 10;
  c.train.precision = "fp16";
  c.train.loss_scale_init = 1024.0;
  c.train.loss_scale_window = 2;
  ::setenv("MOE_TEST_OVERFLOW_STEP", "3", 1);
  TrainOptions straight;
  straight.run_dir = dir + "/straight";
  straight.quiet = true;
  train(c, straight, world);
  TrainOptions interrupted = straight;
  interrupted.run_dir = dir + "/resumed";
  interrupted.exit_after = 6;
  EXPECT_EQ(train(c, interrupted, world).steps_done, 6);
  interrupted.exit_after = 0;
  EXPECT_EQ(train(c, interrupted, world).steps_done, 10);
  ::unsetenv("MOE_TEST_OVERFLOW_STEP");

  const auto a = metrics(straight.run_dir), b = metrics(interrupted.run_dir);
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  EXPECT_EQ(a[1]["loss_scale"].get<double>(), 2048.0);  // grown after steps 1-2
  EXPECT_EQ(a[2]["loss_scale"].get<double>(), 1024.0);  // step 3 overflowed: halved
  EXPECT_EQ(a[2]["skipped_steps"].get<int64_t>(), 1);
  EXPECT_EQ(a[1]["skipped_steps"].get<int64_t>(), 0);
  EXPECT_EQ(a[4]["loss_scale"].get<double>(), 2048.0);  // two good steps later: doubled again
  EXPECT_EQ(a[9]["skipped_steps"].get<int64_t>(), 1);
  EXPECT_TRUE(std::isfinite(a[9]["loss"].get<double>()));
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(a[i]["loss_scale"].get<double>(), b[i]["loss_scale"].get<double>()) << "step " << i + 1;
  }
  ModelState ma(c), mb(c);
  load_weights(ckpt::resolve(straight.run_dir), ma);
  load_weights(ckpt::resolve(interrupted.run_dir), mb);
  EXPECT_EQ(std::memcmp(ma.params.data(), mb.params.data(), ma.params.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace moe
