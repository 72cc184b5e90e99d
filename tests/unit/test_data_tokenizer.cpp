// Tokenizers and the corpus rules: round trips, BPE compression and determinism, UTF-8 checks,
// document splitting and cleaning.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/bpe.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "src/core/error.h"

namespace fs = std::filesystem;
using namespace moe::data;

namespace {

// Words drawn from a fixed random lexicon of 400 (skewed toward the first ones), so there are
// more distinct pairs than the merges the tests ask for.
std::string sample_text(int words, uint32_t seed) {
  std::mt19937 lex_rng(42);
  std::vector<std::string> lexicon(400);
  for (auto& w : lexicon)
    for (size_t n = 2 + lex_rng() % 7; w.size() < n;) w.push_back(char('a' + lex_rng() % 14));
  std::mt19937 rng(seed);
  std::string s;
  for (int i = 0; i < words; ++i) {
    size_t r = rng() % lexicon.size();
    s += lexicon[r * r / lexicon.size()];
    s += (rng() % 9 == 0) ? ".\n" : " ";
  }
  return s;
}

std::unordered_map<std::string, int64_t> chunk_counts(const std::string& text) {
  std::unordered_map<std::string, int64_t> counts;
  for_each_chunk(text, [&](std::string_view c) { ++counts[std::string(c)]; });
  return counts;
}

}  // namespace

TEST(DataTokenizer, ByteRoundTripAndIds) {
  Tokenizer t = Tokenizer::byte_level();
  EXPECT_EQ(t.vocab_size(), 257);
  EXPECT_EQ(t.eos_id(), 256);
  EXPECT_EQ(t.kind(), "byte");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(char(i));
  auto ids = t.encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(ids[i], i);
  EXPECT_EQ(t.decode(ids), all);
  ids.push_back(t.eos_id());
  EXPECT_EQ(t.decode(ids), all);  // specials decode to nothing
  EXPECT_THROW(t.decode({257}), moe::DataError);
}

TEST(DataTokenizer, BpeRoundTripEveryByteString) {
  std::string text = sample_text(3000, 1);
  Tokenizer t = Tokenizer::bpe(train_bpe(chunk_counts(text), 200, Tokenizer::kFirstMergeId));
  EXPECT_EQ(t.vocab_size(), 257 + 200);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::string s;
    int n = int(rng() % 300);
    for (int i = 0; i < n; ++i) s.push_back(trial % 2 ? char(rng()) : text[rng() % text.size()]);
    EXPECT_EQ(t.decode(t.encode(s)), s) << "trial " << trial;
  }
  std::string long_run(1000, '=');  // longer than one pre-tokenizer chunk
  EXPECT_EQ(t.decode(t.encode(long_run)), long_run);
  EXPECT_EQ(t.decode(t.encode(text)), text);
}

TEST(DataTokenizer, BpeCompressesAndIsDeterministic) {
  std::string train = sample_text(5000, 2), held_out = sample_text(1000, 3);
  auto merges = train_bpe(chunk_counts(train), 300, Tokenizer::kFirstMergeId);
  EXPECT_EQ(merges, train_bpe(chunk_counts(train), 300, Tokenizer::kFirstMergeId));
  Tokenizer t = Tokenizer::bpe(merges);
  EXPECT_LT(t.encode(held_out).size() * 2, held_out.size());  // at least 2 bytes per token
  // The first merge is the most frequent pair; ties go to the smaller pair.
  auto tie = train_bpe({{"ab", 1}, {"cd", 1}}, 1, Tokenizer::kFirstMergeId);
  ASSERT_EQ(tie.size(), 1u);
  EXPECT_EQ(tie[0], Merge('a', 'b'));
  auto freq = train_bpe({{"ab", 1}, {"cd", 3}}, 2, Tokenizer::kFirstMergeId);
  EXPECT_EQ(freq[0], Merge('c', 'd'));
}

TEST(DataTokenizer, SaveLoadKeepsEncoding) {
  fs::path dir = fs::temp_directory_path() / ("moe_data_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string text = sample_text(2000, 4);
  Tokenizer t = Tokenizer::bpe(train_bpe(chunk_counts(text), 100, Tokenizer::kFirstMergeId));
  t.save(dir.string());
  Tokenizer u = Tokenizer::load(dir.string());
  EXPECT_EQ(u.kind(), "bpe");
  EXPECT_EQ(u.vocab_size(), t.vocab_size());
  EXPECT_EQ(u.encode(text), t.encode(text));
  // A merge that refers to an id defined later is rejected, naming the file.
  std::ofstream(dir / "tokenizer.json") << R"({"kind":"bpe","vocab_size":258,"merges":[[300,1]]})";
  try {
    Tokenizer::load(dir.string());
    FAIL() << "expected DataError";
  } catch (const moe::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(DataCorpus, Utf8Validation) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xff"), 2u);
  EXPECT_EQ(find_invalid_utf8("a\xc3"), 1u);               // truncated sequence
  EXPECT_EQ(find_invalid_utf8("xx\xc0\xaf"), 2u);          // overlong
  EXPECT_EQ(find_invalid_utf8("\xed\xa0\x80"), 0u);        // UTF-16 surrogate
  EXPECT_EQ(find_invalid_utf8("ok\xf4\x90\x80\x80"), 2u);  // past U+10FFFF
}

TEST(DataCorpus, DocumentSplittingAndCleaning) {
  auto docs = split_documents("f", "one\r\nline  \r\n%\r\ntwo\n%\n%\n  three\n\n");
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(clean_document(docs[0]), "one\nline");
  EXPECT_EQ(clean_document(docs[1]), "two");
  EXPECT_EQ(clean_document(docs[2]), "");  // dropped by for_each_document
  EXPECT_EQ(clean_document(docs[3]), "  three");
  EXPECT_EQ(split_documents("f", "100% sure\n%%\nmore").size(), 1u);  // only a lone % separates
  EXPECT_EQ(clean_document("a\rb\r"), "a\nb");
  auto jl = split_documents("x.jsonl", "{\"text\": \"a\\nb\"}\n\n{\"text\": \"c\", \"id\": 2}\n");
  ASSERT_EQ(jl.size(), 2u);
  EXPECT_EQ(jl[0], "a\nb");
  EXPECT_THROW(split_documents("x.jsonl", "{\"txt\": 1}\n"), moe::DataError);
  EXPECT_THROW(split_documents("x.jsonl", "not json\n"), moe::DataError);
}
