// Fine-tuning: frozen groups really stay put and hold no optimizer state, --keep-optimizer, the
// finetune.freeze key, and loading a checkpoint into a model of another shape (DataError).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "src/core/error.h"
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/finetune.h"
#include "src/train/reshard.h"
#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

class Finetune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::fresh_dir("finetune"));
    config_ = new Config(test::small_train_config(test::make_corpus(*dir_)));
    config_->train.steps = 6;
    TrainOptions o;
    o.run_dir = *dir_ + "/pre";
    o.quiet = true;
    train(*config_, o, test::test_world());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete config_;
    delete dir_;
  }
  static std::vector<float> params_of(const Config& c, const std::string& run) {
    ModelState m(c);
    load_weights(run, m);
    return {m.params.begin(), m.params.end()};
  }
  static nlohmann::json manifest_of(const std::string& run) { return ckpt::read_manifest(ckpt::resolve(run)); }
  static std::string* dir_;
  static Config* config_;
};
std::string* Finetune::dir_ = nullptr;
Config* Finetune::config_ = nullptr;

TEST_F(Finetune, FrozenTensorsStayBitIdenticalAndHaveNoOptimizerState) {
  Config c = *config_;
  c.train.steps = 5;
  c.finetune.freeze = {"attention", "norms", "embeddings", "router"};
  TrainOptions o;
  o.run_dir = *dir_ + "/frozen";
  o.init_from = *dir_ + "/pre";
  o.quiet = true;
  train(c, o, test::test_world());
  const std::vector<float> before = params_of(c, *dir_ + "/pre"), after = params_of(c, o.run_dir);
  ModelState m(c);
  int frozen = 0, trained = 0;
  for (const auto& p : m.table.params()) {
    const bool same = std::memcmp(before.data() + p.offset, after.data() + p.offset, sizeof(float) * p.numel) == 0;
    bool is_frozen = false;
    for (const auto& g : c.finetune.freeze) is_frozen = is_frozen || in_freeze_group(g, p.name);
    if (is_frozen) {
      EXPECT_TRUE(same) << p.name << " is frozen but changed";
      ++frozen;
    } else if (p.trainable) {
      EXPECT_FALSE(same) << p.name << " is trained but did not change";
      ++trained;
    }
  }
  EXPECT_GT(frozen, 10);
  EXPECT_GT(trained, 5);
  // No AdamW state for frozen tensors: neither in memory nor in the checkpoint.
  AdamW all(m.table, c.optim), some(m.table, c.optim, frozen_params(c, m.table));
  EXPECT_LT(some.state_floats(), all.state_floats());
  std::set<std::string> names;
  const nlohmann::json manifest = manifest_of(o.run_dir);
  for (const auto& r : manifest["ranks"])
    for (const auto& t : r["tensors"]) names.insert(t["name"].get<std::string>());
  EXPECT_TRUE(names.count("param/layers.0.attention.wq.weight"));
  EXPECT_FALSE(names.count("adam_m/layers.0.attention.wq.weight"));
  EXPECT_FALSE(names.count("adam_v/norm.weight"));
  EXPECT_TRUE(names.count("adam_m/output.weight"));
  // The optimizer started fresh: its step count is the fine-tune's.
  EXPECT_EQ(manifest_of(o.run_dir)["meta"]["optimizer_step"].get<int64_t>(), 5);
}

TEST_F(Finetune, AllButExpertsTrainsOnlyTheRoutedExperts) {
  Config c = *config_;
  c.train.steps = 3;
  c.finetune.freeze = {"all_but_experts"};
  TrainOptions o;
  o.run_dir = *dir_ + "/experts_only";
  o.init_from = *dir_ + "/pre";
  o.quiet = true;
  train(c, o, test::test_world());
  const std::vector<float> before = params_of(c, *dir_ + "/pre"), after = params_of(c, o.run_dir);
  ModelState m(c);
  for (const auto& p : m.table.params()) {
    const bool same = std::memcmp(before.data() + p.offset, after.data() + p.offset, sizeof(float) * p.numel) == 0;
    EXPECT_EQ(same, p.name.find(".moe.experts.") == std::string::npos) << p.name;
  }
}

TEST_F(Finetune, KeepOptimizerContinuesAdamW) {
  Config c = *config_;
  c.train.steps = 2;
  TrainOptions o;
  o.run_dir = *dir_ + "/keep";
  o.init_from = *dir_ + "/pre";
  o.keep_optimizer = true;
  o.quiet = true;
  train(c, o, test::test_world());
  EXPECT_EQ(manifest_of(o.run_dir)["meta"]["optimizer_step"].get<int64_t>(), 6 + 2);
  // Moments frozen in the source cannot be kept: a DataError that says what to do.
  Config f = c;
  f.finetune.freeze = {"output"};
  TrainOptions fo = o;
  fo.run_dir = *dir_ + "/keep_frozen_src";
  fo.keep_optimizer = false;
  train(f, fo, test::test_world());
  TrainOptions again = o;
  again.init_from = fo.run_dir;
  again.run_dir = *dir_ + "/keep_missing";
  try {
    train(c, again, test::test_world());
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("adam_m/output.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--keep-optimizer"), std::string::npos) << e.what();
  }
}

TEST_F(Finetune, AnotherModelShapeIsADataErrorNamingTensorAndFile) {
  Config c = *config_;
  c.moe.num_experts = 8;
  ModelState m(c);
  try {
    load_weights(*dir_ + "/pre", m);
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layers.1.moe.router.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("rank_00000.h5"), std::string::npos) << msg;
    EXPECT_EQ(e.exit_code(), kExitData);
  }
}

TEST(FinetuneConfig, FreezeListParsesChecksAndRoundTrips) {
  Config c = parse_config("finetune:\n  freeze: [attention, norms]\n", "ft.yaml", {});
  EXPECT_EQ(c.finetune.freeze, (std::vector<std::string>{"attention", "norms"}));
  Config d = parse_config(dump_config(c), "dump", {});
  EXPECT_EQ(d.finetune.freeze, c.finetune.freeze);
  Config e = parse_config("", "ft.yaml", {"finetune.freeze=experts"});
  EXPECT_EQ(e.finetune.freeze, (std::vector<std::string>{"experts"}));
  Config f = parse_config("", "ft.yaml", {"finetune.freeze=[router,output]"});
  EXPECT_EQ(f.finetune.freeze, (std::vector<std::string>{"router", "output"}));
  EXPECT_TRUE(parse_config("", "ft.yaml", {}).finetune.freeze.empty());
  try {
    parse_config("finetune:\n  freeze: [attn]\n", "ft.yaml", {});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("finetune.freeze"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ft.yaml"), std::string::npos) << msg;
  }
  // Freezing the router while its balancing bias moves would be a lie: refused.
  Config g = parse_config("finetune:\n  freeze: [router]\nmoe:\n  bias_update_rate: 0.001\n", "ft.yaml", {});
  ModelState m(g);
  EXPECT_THROW(frozen_params(g, m.table), ConfigError);
}

TEST(FinetuneGroups, NamesMapToGroups) {
  EXPECT_TRUE(in_freeze_group("embeddings", "tok_embeddings.weight"));
  EXPECT_TRUE(in_freeze_group("attention", "layers.3.attention.wk.weight"));
  EXPECT_FALSE(in_freeze_group("attention", "layers.3.attention_norm.weight"));
  EXPECT_TRUE(in_freeze_group("norms", "layers.3.attention_norm.weight"));
  EXPECT_TRUE(in_freeze_group("norms", "layers.0.ffn_norm.weight"));
  EXPECT_TRUE(in_freeze_group("norms", "norm.weight"));
  EXPECT_TRUE(in_freeze_group("router", "layers.1.moe.router.bias"));
  EXPECT_TRUE(in_freeze_group("shared_experts", "layers.1.moe.shared.w2.weight"));
  EXPECT_TRUE(in_freeze_group("experts", "layers.1.moe.experts.w3"));
  EXPECT_TRUE(in_freeze_group("dense_ffn", "layers.0.feed_forward.w1.weight"));
  EXPECT_TRUE(in_freeze_group("output", "output.weight"));
  EXPECT_FALSE(in_freeze_group("all_but_experts", "layers.1.moe.experts.w1"));
  EXPECT_TRUE(in_freeze_group("all_but_experts", "layers.1.moe.router.weight"));
}

TEST(Reshard, CopyOverlapCutsBoxes) {
  // A 4x3x2 tensor cut along dim 0 into [0,1) and [1,4); a destination box [1,3) x [1,3) x [0,2).
  std::vector<float> whole(24);
  for (size_t i = 0; i < 24; ++i) whole[i] = float(i);
  Box a{{0, 0, 0}, {1, 3, 2}}, b{{1, 0, 0}, {3, 3, 2}}, want{{1, 1, 0}, {2, 2, 2}};
  std::vector<float> out(8, -1.0f);
  EXPECT_EQ(copy_overlap(whole.data(), a, out.data(), want), 0);
  EXPECT_EQ(copy_overlap(whole.data() + 6, b, out.data(), want), 8);
  const std::vector<float> expect{8, 9, 10, 11, 14, 15, 16, 17};
  EXPECT_EQ(out, expect);
  float s = 5.0f, d = 0.0f;
  EXPECT_EQ(copy_overlap(&s, Box{}, &d, Box{}), 1);
  EXPECT_EQ(d, 5.0f);
}

}  // namespace
}  // namespace moe
