// Every kind of bad dataset gives a DataError (exit 3) that names the offending file, before any
// token of it is handed out.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "data/file_util.h"
#include "data/hdf5_io.h"
#include "data/inspect.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "data/prepare.h"
#include "src/core/error.h"

namespace fs = std::filesystem;
using namespace moe::data;

namespace {

class DataErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("moe_data_err_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "in");
    std::ofstream out(root_ / "in" / "corpus.txt");
    for (int i = 0; i < 100; ++i) out << "fortune number " << i << "\n%\n";
    out.close();
    PrepareOptions o;
    o.inputs = {(root_ / "in").string()};
    o.output = dir();
    o.shard_tokens = 500;
    o.progress = false;
    prepare_dataset(o);
    ASSERT_GE(Manifest::load(dir()).train.shards.size(), 3u);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string dir() const { return (root_ / "ds").string(); }
  std::string shard(int i) const { return (root_ / "ds" / ("train-0000" + std::to_string(i) + ".h5")).string(); }
  LoaderOptions options() const {
    LoaderOptions o;
    o.path = dir();
    o.seq_len = 8;
    o.global_batch = 4;
    o.model_vocab_size = 257;
    return o;
  }
  // Makes the manifest's checksum agree with the file again, so the next check is reached.
  void fix_checksum(const std::string& path) {
    Manifest m = Manifest::load(dir());
    for (auto& e : m.train.shards)
      if (e.file == fs::path(path).filename()) e.checksum = fnv1a64_file(path);
    m.save(dir());
  }
  // Runs fn and expects a DataError whose message contains every needle.
  static void expect_data_error(const std::function<void()>& fn, std::vector<std::string> needles) {
    try {
      fn();
      FAIL() << "expected DataError mentioning " << needles[0];
    } catch (const moe::DataError& e) {
      EXPECT_EQ(e.exit_code(), 3);
      for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  }
  // Both the loader and inspect reject the dataset.
  void expect_rejected(std::vector<std::string> needles) {
    expect_data_error([&] { ShardedLoader l(options()); }, needles);
    std::ostringstream sink;
    expect_data_error([&] { inspect_dataset(dir(), sink); }, needles);
  }
  fs::path root_;
};

}  // namespace

TEST_F(DataErrors, CleanDatasetLoads) {
  ShardedLoader l(options());
  std::vector<int32_t> b;
  l.next(b);
  EXPECT_EQ(b.size(), 4u * 9u);
  std::ostringstream out;
  inspect_dataset(dir(), out);
  EXPECT_NE(out.str().find("fortune number"), std::string::npos);
}

TEST_F(DataErrors, MissingFolder) {
  LoaderOptions o = options();
  o.path = (root_ / "no_such_dataset").string();
  expect_data_error([&] { ShardedLoader l(o); }, {"no_such_dataset"});
  expect_data_error([&] { EvalReader r(o.path, 8, 257); }, {"no_such_dataset"});
}

TEST_F(DataErrors, ByteFlipIsAChecksumMismatch) {
  std::string bytes = read_file(shard(1));
  bytes[bytes.size() - 3] ^= 0x01;
  std::ofstream(shard(1), std::ios::binary) << bytes;
  expect_rejected({"train-00001.h5", "checksum"});
}

TEST_F(DataErrors, TruncatedShard) {
  fs::resize_file(shard(2), fs::file_size(shard(2)) / 2);
  expect_rejected({"train-00002.h5"});
  fix_checksum(shard(2));  // HDF5 itself must then refuse the file
  expect_rejected({"train-00002.h5"});
}

TEST_F(DataErrors, NotAnHdf5File) {
  std::ofstream(shard(0), std::ios::binary) << "this is not hdf5";
  fix_checksum(shard(0));
  expect_rejected({"train-00000.h5", "HDF5"});
}

TEST_F(DataErrors, WrongDtype) {
  ShardContents c = read_shard(shard(1));
  c.dtype = TokenDtype::kUint32;
  write_shard(shard(1), c);
  fix_checksum(shard(1));
  expect_rejected({"train-00001.h5", "dtype"});
}

TEST_F(DataErrors, TokenIdBeyondModelVocabulary) {
  ShardContents c = read_shard(shard(1));
  c.tokens[7] = 256;  // <eos>: valid for the dataset, too large for a 200-token model
  write_shard(shard(1), c);
  fix_checksum(shard(1));
  LoaderOptions o = options();
  o.model_vocab_size = 200;  // smaller than the dataset's vocabulary: refused up front
  expect_data_error([&] { ShardedLoader l(o); }, {"manifest.json", "vocab"});

  c.tokens[7] = 60000;  // not even in the tokenizer's vocabulary: found when read
  write_shard(shard(1), c);
  fix_checksum(shard(1));
  for (int64_t prefetch : {0, 2}) {
    o = options();
    o.prefetch = prefetch;
    ShardedLoader l(o);
    std::vector<int32_t> b;
    expect_data_error(
        [&] {
          for (int64_t s = 0; s <= l.sequences_per_epoch() / 4; ++s) l.next(b);
        },
        {"train-00001.h5", "60000"});
  }
}

TEST_F(DataErrors, ManifestListsAMissingShard) {
  fs::remove(shard(2));
  expect_rejected({"train-00002.h5", "missing"});
}

TEST_F(DataErrors, ManifestTokenCountMismatch) {
  Manifest m = Manifest::load(dir());
  m.train.shards[1].tokens -= 1;
  m.train.tokens -= 1;
  m.save(dir());
  expect_rejected({"train-00001.h5", "tokens"});
  m.train.tokens += 5;  // totals that disagree with the shard list
  m.save(dir());
  expect_rejected({"manifest.json"});
}

TEST_F(DataErrors, CorruptManifest) {
  std::ofstream(fs::path(dir()) / "manifest.json") << "{ not json";
  expect_rejected({"manifest.json"});
}
