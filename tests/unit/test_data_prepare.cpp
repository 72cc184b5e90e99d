// `data prepare` end to end through the library: text -> shards -> decode gives the text back,
// file discovery rules, splits, shard sizes and input errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/corpus.h"
#include "data/hdf5_io.h"
#include "data/manifest.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "src/core/error.h"

namespace fs = std::filesystem;
using namespace moe::data;

namespace {

class DataPrepare : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("moe_data_prep_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "in");
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const std::string& rel, const std::string& bytes) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel, std::ios::binary) << bytes;
  }
  PrepareOptions options() {
    PrepareOptions o;
    o.inputs = {(root_ / "in").string()};
    o.output = (root_ / "out").string();
    o.progress = false;
    return o;
  }
  // All tokens of a split, concatenated in manifest order.
  std::vector<int32_t> split_tokens(const std::string& split) {
    Manifest m = Manifest::load((root_ / "out").string());
    std::vector<int32_t> all;
    for (const auto& e : m.split(split).shards) {
      ShardContents c = read_shard((root_ / "out" / e.file).string());
      EXPECT_EQ(int64_t(c.tokens.size()), e.tokens);
      EXPECT_EQ(int64_t(c.doc_offsets.size()), e.documents);
      all.insert(all.end(), c.tokens.begin(), c.tokens.end());
    }
    return all;
  }
  // Documents of a token stream (cut at <eos>), decoded.
  static std::vector<std::string> documents(const Tokenizer& t, const std::vector<int32_t>& ids) {
    std::vector<std::string> docs;
    std::vector<int32_t> cur;
    for (int32_t id : ids) {
      if (id == t.eos_id()) {
        docs.push_back(t.decode(cur));
        cur.clear();
      } else {
        cur.push_back(id);
      }
    }
    EXPECT_TRUE(cur.empty()) << "stream does not end with <eos>";
    return docs;
  }
  fs::path root_;
};

}  // namespace

TEST_F(DataPrepare, ByteRoundTripThroughShards) {
  write("in/a.txt", "first fortune\r\n%\nsecond one  \n%\n\n%\nthird\n");
  write("in/b/c.txt", "a whole file is one document\nwith two lines\n\n");
  write("in/d.jsonl", "{\"text\": \"json doc \\u00e9\"}\n{\"text\": \"another\"}\n");
  PrepareOptions o = options();
  o.valid_fraction = 0.0;
  o.shard_tokens = 16;  // many small shards; documents continue across them
  PrepareStats st = prepare_dataset(o);
  EXPECT_EQ(st.documents, 6);
  EXPECT_EQ(st.valid_docs, 0);
  Tokenizer t = Tokenizer::load(o.output);
  std::vector<std::string> expect = {"first fortune", "second one", "third",
                                     "a whole file is one document\nwith two lines", "json doc \xc3\xa9", "another"};
  EXPECT_EQ(documents(t, split_tokens("train")), expect);
  Manifest m = Manifest::load(o.output);
  EXPECT_GT(m.train.shards.size(), 5u);
  for (const auto& e : m.train.shards) EXPECT_LE(e.tokens, 16);
  EXPECT_EQ(m.dtype, TokenDtype::kUint16);
  EXPECT_EQ(m.train.documents, 6);
}

TEST_F(DataPrepare, BpeDatasetDecodesAndCompresses) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "the experts route tokens number " + std::to_string(i % 37) + "\n%\n";
  write("in/corpus", text);
  PrepareOptions o = options();
  o.tokenizer = "bpe";
  o.vocab_size = 400;
  PrepareStats st = prepare_dataset(o);
  // This corpus runs out of pairs before 400: the vocabulary is 257 + the merges learned.
  EXPECT_GT(st.vocab_size, 300);
  EXPECT_LE(st.vocab_size, 400);
  EXPECT_GT(st.valid_docs, 0);
  Tokenizer t = Tokenizer::load(o.output);
  auto train = documents(t, split_tokens("train")), valid = documents(t, split_tokens("valid"));
  EXPECT_EQ(int64_t(train.size() + valid.size()), 400);
  EXPECT_EQ(train[0], "the experts route tokens number 0");
  EXPECT_LT(st.train_tokens + st.valid_tokens, int64_t(text.size()) / 3);
}

TEST_F(DataPrepare, SkipsBinaryAndDeduplicatesSymlinks) {
  write("in/z.txt", "zeta");
  write("in/a.txt", "alpha");
  write("in/a.dat", std::string("\x00\x01\x02", 3));
  fs::create_symlink(root_ / "in" / "a.txt", root_ / "in" / "a.u8");
  fs::create_directories(root_ / "in" / "sub");
  fs::create_directory_symlink(root_ / "in", root_ / "in" / "sub" / "loop");  // a cycle must terminate
  CorpusFiles c = collect_corpus_files({(root_ / "in").string(), (root_ / "in" / "z.txt").string()});
  ASSERT_EQ(c.files.size(), 2u);
  EXPECT_EQ(fs::path(c.files[0]).filename(), "a.txt");
  EXPECT_EQ(fs::path(c.files[1]).filename(), "z.txt");
  EXPECT_EQ(c.skipped_binary, 1);
}

TEST_F(DataPrepare, SplitIsDeterministicWithAtLeastOneValid) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "doc " + std::to_string(i) + "\n%\n";
  write("in/f", text);
  PrepareOptions o = options();
  o.valid_fraction = 0.001;  // the hash alone gives no valid document
  for (int i = 0; i < 50; ++i) ASSERT_FALSE(split_is_valid(0, 0.001, i));
  PrepareStats a = prepare_dataset(o);
  EXPECT_EQ(a.valid_docs, 1);
  EXPECT_EQ(a.train_docs, 49);
  o.valid_fraction = 0.3;
  PrepareStats b = prepare_dataset(o);
  auto first = split_tokens("valid");
  PrepareStats c = prepare_dataset(o);
  EXPECT_EQ(split_tokens("valid"), first);
  EXPECT_EQ(b.valid_docs, c.valid_docs);
  EXPECT_GT(b.valid_docs, 5);
  EXPECT_LT(b.valid_docs, 25);
  int64_t expect_valid = 0;
  for (int i = 0; i < 50; ++i) expect_valid += split_is_valid(0, 0.3, i);
  EXPECT_EQ(b.valid_docs, expect_valid);
}

TEST_F(DataPrepare, InvalidUtf8NamesFileAndOffset) {
  write("in/good.txt", "fine");
  write("in/bad.txt", "abc\xff" "def");
  try {
    prepare_dataset(options());
    FAIL() << "expected DataError";
  } catch (const moe::DataError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad.txt"), std::string::npos) << msg;
    EXPECT_NE(msg.find("byte offset 3"), std::string::npos) << msg;
    EXPECT_EQ(e.exit_code(), 3);
  }
}

TEST_F(DataPrepare, BadOptionsAndMissingInput) {
  write("in/a.txt", "alpha");
  PrepareOptions o = options();
  o.inputs = {(root_ / "nope").string()};
  try {
    prepare_dataset(o);
    FAIL() << "expected DataError";
  } catch (const moe::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos);
  }
  o = options();
  o.valid_fraction = 1.0;
  EXPECT_THROW(prepare_dataset(o), moe::ConfigError);
  o = options();
  o.tokenizer = "bpe";
  o.vocab_size = 100;
  EXPECT_THROW(prepare_dataset(o), moe::ConfigError);
  o = options();
  o.shard_tokens = 0;
  EXPECT_THROW(prepare_dataset(o), moe::ConfigError);
}
