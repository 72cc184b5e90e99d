// Export: the safetensors layout byte by byte, export -> import -> export bit for bit through both
// formats, imported weights equal the checkpoint's, and shape mismatches name tensor and file.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "src/core/error.h"
#include "src/train/checkpoint_state.h"
#include "src/train/export.h"
#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST(Safetensors, LayoutIsTheSpec) {
  const std::string dir = test::fresh_dir("safetensors");
  const float a[6] = {1, 2, 3, 4, 5, 6}, b[1] = {-0.5f};
  write_safetensors(dir + "/t.safetensors", {{"a", {2, 3}, a}, {"b", {1}, b}}, "model: {}\n");
  const std::string bytes = file_bytes(dir + "/t.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_EQ(bytes.size(), 8 + n + 7 * 4);
  EXPECT_EQ((8 + n) % 8, 0u) << "data starts 8-byte aligned";
  const nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["a"]["dtype"], "F32");
  EXPECT_EQ(h["a"]["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(h["a"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(h["b"]["data_offsets"], nlohmann::json({24, 28}));
  EXPECT_EQ(h["__metadata__"]["moe.config"], "model: {}\n");
  float back[7];
  std::memcpy(back, bytes.data() + 8 + n, 28);
  EXPECT_EQ(back[5], 6.0f);
  EXPECT_EQ(back[6], -0.5f);
  auto f = ExportedFile::open(dir + "/t.safetensors");
  EXPECT_EQ(f->shape("a"), (std::vector<int64_t>{2, 3}));
  float r[6];
  f->read("a", r);
  EXPECT_EQ(std::memcmp(r, a, sizeof a), 0);
  EXPECT_THROW(f->shape("missing"), DataError);
}

class Export : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::fresh_dir("export"));
    config_ = new Config(test::small_train_config(test::make_corpus(*dir_)));
    config_->train.steps = 3;
    TrainOptions o;
    o.run_dir = *dir_ + "/run";
    o.quiet = true;
    train(*config_, o, test::test_world());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete config_;
    delete dir_;
  }
  static std::string* dir_;
  static Config* config_;
};
std::string* Export::dir_ = nullptr;
Config* Export::config_ = nullptr;

TEST_F(Export, ExportImportExportIsBitExact) {
  const std::string& d = *dir_;
  export_model(d + "/run", ExportFormat::safetensors, d + "/a.safetensors");
  export_model(d + "/a.safetensors", ExportFormat::hdf5, d + "/b.h5");
  export_model(d + "/b.h5", ExportFormat::safetensors, d + "/c.safetensors");
  export_model(d + "/b.h5", ExportFormat::hdf5, d + "/d.h5");
  EXPECT_EQ(file_bytes(d + "/a.safetensors"), file_bytes(d + "/c.safetensors"));
  EXPECT_EQ(file_bytes(d + "/b.h5"), file_bytes(d + "/d.h5"));
  // Importing gives exactly the checkpoint's weights, and the config comes along.
  ModelState from_ckpt(*config_), from_st(*config_), from_h5(*config_);
  load_weights(d + "/run", from_ckpt);
  load_weights(d + "/a.safetensors", from_st);
  load_weights(d + "/b.h5", from_h5);
  EXPECT_EQ(from_ckpt.params, from_st.params);
  EXPECT_EQ(from_ckpt.params, from_h5.params);
  const Config stored = stored_config(d + "/b.h5", {});
  EXPECT_EQ(dump_config(stored), dump_config(stored_config(d + "/run", {})));
  EXPECT_EQ(stored.moe.num_experts, config_->moe.num_experts);
}

TEST_F(Export, ImportIntoAnExpertShard) {
  const std::string& d = *dir_;
  export_model(d + "/run", ExportFormat::safetensors, d + "/shard.safetensors");
  ModelState full(*config_), half(*config_, ExpertShard{2, 1});
  load_weights(d + "/shard.safetensors", full);
  load_weights(d + "/shard.safetensors", half);
  for (const auto& p : half.table.params()) {
    const int i = full.table.index_of(p.name);
    const auto& fp = full.table.params()[size_t(i)];
    const int64_t skip = p.shard.split_dim == 0 ? p.numel : 0;  // rank 1 holds experts 2 and 3
    EXPECT_EQ(std::memcmp(half.params.data() + p.offset, full.params.data() + fp.offset + skip, sizeof(float) * p.numel),
              0)
        << p.name;
  }
}

TEST_F(Export, ShapeMismatchNamesTensorAndFile) {
  const std::string& d = *dir_;
  export_model(d + "/run", ExportFormat::hdf5, d + "/m.h5");
  Config wide = *config_;
  wide.model.d_model = 64;
  ModelState m(wide);
  try {
    load_weights(d + "/m.h5", m);
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("tok_embeddings.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("m.h5"), std::string::npos) << msg;
  }
  std::ofstream(d + "/junk.safetensors") << "not a safetensors file";
  EXPECT_THROW(load_weights(d + "/junk.safetensors", m), DataError);
}

}  // namespace
}  // namespace moe
