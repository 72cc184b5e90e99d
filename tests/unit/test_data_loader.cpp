// The sharded loader: windows and shuffle as documented, layout (dp) invariance, exact resume with
// and without prefetch, and the in-order eval reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "data/hdf5_io.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "data/prepare.h"
#include "src/core/error.h"

namespace fs = std::filesystem;
using namespace moe::data;

namespace {

class DataLoader : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("moe_data_loader_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "in");
    std::ofstream out(dir_ / "in" / "corpus.txt");
    for (int i = 0; i < 300; ++i) out << "document " << i << " says " << std::string(size_t(i % 23), 'x') << "\n%\n";
    out.close();
    PrepareOptions o;
    o.inputs = {(dir_ / "in").string()};
    o.output = (dir_ / "ds").string();
    o.shard_tokens = 1000;  // windows cross shard boundaries
    o.valid_fraction = 0.1;
    o.progress = false;
    prepare_dataset(o);
    Manifest m = Manifest::load(o.output);
    train_.clear();
    valid_.clear();
    for (const auto& e : m.train.shards) {
      ShardContents c = read_shard((dir_ / "ds" / e.file).string());
      train_.insert(train_.end(), c.tokens.begin(), c.tokens.end());
    }
    for (const auto& e : m.valid.shards) {
      ShardContents c = read_shard((dir_ / "ds" / e.file).string());
      valid_.insert(valid_.end(), c.tokens.begin(), c.tokens.end());
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static LoaderOptions options(int64_t rank, int64_t size, int64_t prefetch) {
    LoaderOptions o;
    o.path = (dir_ / "ds").string();
    o.seq_len = 16;
    o.global_batch = 8;
    o.dp_rank = rank;
    o.dp_size = size;
    o.seed = 1234;
    o.model_vocab_size = 257;
    o.prefetch = prefetch;
    return o;
  }
  static std::vector<std::vector<int32_t>> batches(ShardedLoader& l, int n) {
    std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
    for (auto& b : out) l.next(b);
    return out;
  }
  static inline fs::path dir_;
  static inline std::vector<uint32_t> train_, valid_;
};

}  // namespace

TEST_F(DataLoader, RowsAreShuffledWindowsOfTheTrainStream) {
  ShardedLoader l(options(0, 1, 0));
  const int64_t T = 16, B = 8, N = l.sequences_per_epoch();
  ASSERT_EQ(N, (int64_t(train_.size()) - 1) / T);
  ASSERT_GT(N, 3 * B);
  for (int64_t s = 0; s < 3; ++s) {
    EXPECT_EQ(l.step(), s);
    std::vector<int32_t> b;
    l.next(b);
    ASSERT_EQ(int64_t(b.size()), B * (T + 1));
    auto perm = epoch_permutation(1234, 0, N);
    for (int64_t i = 0; i < B; ++i) {
      int64_t w = perm[size_t(s * B + i)];
      for (int64_t k = 0; k <= T; ++k) ASSERT_EQ(uint32_t(b[size_t(i * (T + 1) + k)]), train_[size_t(w * T + k)]);
    }
  }
}

TEST_F(DataLoader, EpochPermutationCoversEveryWindowOnce) {
  for (int64_t n : {1, 2, 17, 1000}) {
    for (int64_t epoch : {0, 1, 5}) {
      auto p = epoch_permutation(9, epoch, n);
      std::vector<int> seen(size_t(n), 0);
      for (uint32_t w : p) ++seen[w];
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[size_t(i)], 1) << "n=" << n << " window " << i;
    }
  }
  EXPECT_NE(epoch_permutation(9, 0, 1000), epoch_permutation(9, 1, 1000));
  EXPECT_NE(epoch_permutation(9, 0, 1000), epoch_permutation(10, 0, 1000));
  EXPECT_EQ(epoch_permutation(9, 3, 1000), epoch_permutation(9, 3, 1000));
  // Over one epoch of steps the loader hands out each window exactly once.
  ShardedLoader l(options(0, 1, 2));
  const int64_t N = l.sequences_per_epoch(), T = 16;
  std::map<std::vector<int32_t>, int> windows;
  for (int64_t w = 0; w < N; ++w)
    ++windows[std::vector<int32_t>(train_.begin() + w * T, train_.begin() + w * T + T + 1)];
  std::map<std::vector<int32_t>, int> got;
  std::vector<int32_t> b;
  for (int64_t s = 0; s < N / 8; ++s) {
    l.next(b);
    for (size_t i = 0; i < 8; ++i) ++got[std::vector<int32_t>(b.begin() + long(i * 17), b.begin() + long(i * 17 + 17))];
  }
  for (const auto& [w, c] : got) EXPECT_LE(c, windows[w]);
  int64_t total = 0;
  for (const auto& [w, c] : got) total += c;
  EXPECT_EQ(total, (N / 8) * 8);
}

TEST_F(DataLoader, BatchesDoNotDependOnDataParallelSize) {
  ShardedLoader full(options(0, 1, 0));
  // Enough steps to cross into the second epoch.
  const int steps = int(full.sequences_per_epoch() / 8) + 3;
  auto ref = batches(full, steps);
  for (int64_t dp : {2, 4}) {
    std::vector<std::vector<std::vector<int32_t>>> parts;
    for (int64_t r = 0; r < dp; ++r) {
      ShardedLoader l(options(r, dp, r % 2 ? 3 : 0));
      EXPECT_EQ(l.rows(), 8 / dp);
      parts.push_back(batches(l, steps));
    }
    for (int s = 0; s < steps; ++s) {
      std::vector<int32_t> cat;
      for (int64_t r = 0; r < dp; ++r) cat.insert(cat.end(), parts[size_t(r)][size_t(s)].begin(), parts[size_t(r)][size_t(s)].end());
      ASSERT_EQ(cat, ref[size_t(s)]) << "dp=" << dp << " step " << s;
    }
  }
}

// With m micro-batches, global micro-batch j is rows [j*B/m, (j+1)*B/m) of the global batch
// whatever dp is: rank r's local micro-batch j is the r-th part of it (pipeline invariance).
TEST_F(DataLoader, MicroBatchesAreSlicesOfTheGlobalBatch) {
  ShardedLoader full(options(0, 1, 0));
  auto ref = batches(full, 3);
  const int64_t T1 = 17, m = 2, dp = 2, per = 8 / (m * dp);  // rows per local micro-batch
  for (int64_t r = 0; r < dp; ++r) {
    LoaderOptions o = options(r, dp, r % 2 ? 2 : 0);
    o.microbatches = m;
    ShardedLoader l(o);
    auto got = batches(l, 3);
    for (int s = 0; s < 3; ++s)
      for (int64_t j = 0; j < m; ++j)
        for (int64_t k = 0; k < per; ++k) {
          const int64_t local = j * per + k, global = j * (8 / m) + r * per + k;
          const auto* a = got[size_t(s)].data() + local * T1;
          const auto* b = ref[size_t(s)].data() + global * T1;
          ASSERT_TRUE(std::equal(a, a + T1, b)) << "rank " << r << " step " << s << " micro " << j << " row " << k;
        }
  }
  LoaderOptions bad = options(0, 2, 0);
  bad.microbatches = 3;  // 8 rows do not split into 2 x 3
  EXPECT_THROW(ShardedLoader l(bad), moe::ConfigError);
}

TEST_F(DataLoader, RestoreResumesExactly) {
  for (int64_t prefetch : {0, 1, 4}) {
    ShardedLoader straight(options(1, 2, prefetch));
    auto ref = batches(straight, 12);
    ShardedLoader first(options(1, 2, prefetch));
    batches(first, 5);
    nlohmann::json st = first.state();
    EXPECT_EQ(st["step"], 5);  // batches handed out, not those prefetched
    ShardedLoader resumed(options(1, 2, prefetch));
    resumed.restore(st);
    EXPECT_EQ(resumed.step(), 5);
    auto rest = batches(resumed, 7);
    for (int i = 0; i < 7; ++i) ASSERT_EQ(rest[size_t(i)], ref[size_t(5 + i)]) << "prefetch " << prefetch;
    // Restoring backwards on a loader in use works too.
    first.restore(st);
    std::vector<int32_t> b;
    first.next(b);
    EXPECT_EQ(b, ref[5]);
  }
  ShardedLoader l(options(0, 1, 2));
  nlohmann::json st = l.state();
  st["seed"] = 99;
  EXPECT_THROW(l.restore(st), moe::ConfigError);
  st = l.state();
  st["num_windows"] = 1;
  EXPECT_THROW(l.restore(st), moe::DataError);
}

TEST_F(DataLoader, EvalReaderReadsValidInOrder) {
  EvalReader r((dir_ / "ds").string(), 16, 300);
  ASSERT_EQ(r.num_sequences(), (int64_t(valid_.size()) - 1) / 16);
  ASSERT_GT(r.num_sequences(), 3);
  std::vector<int32_t> out(3 * 17);
  r.read(1, 3, out.data());
  for (int64_t j = 0; j < 3; ++j)
    for (int64_t k = 0; k < 17; ++k) ASSERT_EQ(uint32_t(out[size_t(j * 17 + k)]), valid_[size_t((1 + j) * 16 + k)]);
}

TEST_F(DataLoader, BadOptionsAreConfigErrors) {
  auto o = options(2, 2, 0);
  EXPECT_THROW(ShardedLoader{o}, moe::ConfigError);
  o = options(0, 1, 0);
  o.seq_len = 0;
  EXPECT_THROW(ShardedLoader{o}, moe::ConfigError);
  o = options(0, 1, 0);
  o.seq_len = 1 << 20;  // more than the whole train split
  EXPECT_THROW(ShardedLoader{o}, moe::DataError);
}
