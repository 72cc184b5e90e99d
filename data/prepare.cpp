#include "data/prepare.h"

#include <chrono>
#include <filesystem>
#include <regex>
#include <unordered_map>

#include "data/corpus.h"
#include "data/manifest.h"
#include "data/progress.h"
#include "data/shard_writer.h"
#include "data/tokenizer.h"
#include "src/core/error.h"
#include "src/core/philox.h"

namespace fs = std::filesystem;

namespace moe::data {

bool split_is_valid(uint64_t seed, double fraction, int64_t index) {
  return double(philox_uniform(rng_key(seed, "data.split"), uint64_t(index))) < fraction;
}

namespace {

void check_options(const PrepareOptions& o) {
  if (o.inputs.empty()) throw ConfigError("data prepare: --input is required (files, folders or *.jsonl)");
  if (o.output.empty()) throw ConfigError("data prepare: --output is required");
  if (o.tokenizer != "byte" && o.tokenizer != "bpe")
    throw ConfigError("data prepare: --tokenizer must be byte or bpe, not '" + o.tokenizer + "'");
  if (o.tokenizer == "byte" && o.vocab_size != 0 && o.vocab_size != Tokenizer::kFirstMergeId)
    throw ConfigError("data prepare: --vocab-size is fixed at 257 for --tokenizer byte (use --tokenizer bpe)");
  if (o.tokenizer == "bpe" && o.vocab_size != 0 && o.vocab_size < Tokenizer::kFirstMergeId)
    throw ConfigError("data prepare: --vocab-size must be at least 257 (256 bytes + <eos>) for bpe");
  if (o.vocab_size > (int64_t(1) << 31)) throw ConfigError("data prepare: --vocab-size is too large");
  if (o.shard_tokens < 1) throw ConfigError("data prepare: --shard-tokens must be at least 1");
  if (!(o.valid_fraction >= 0.0 && o.valid_fraction < 1.0))
    throw ConfigError("data prepare: --valid-fraction must be in [0, 1)");
}

// Which documents go to valid: the seeded hash, then at least one document in each split when
// there are two or more (valid only when the fraction is positive).
struct SplitPlan {
  uint64_t seed;
  double fraction;
  int64_t force_valid = -1, force_train = -1;
  bool is_valid(int64_t i) const {
    if (i == force_valid) return true;
    if (i == force_train) return false;
    return split_is_valid(seed, fraction, i);
  }
};

SplitPlan plan_split(const CorpusFiles& corpus, const PrepareOptions& o, int64_t& num_docs) {
  SplitPlan plan{o.seed, o.valid_fraction};
  uint64_t key = rng_key(o.seed, "data.split");
  int64_t n = 0, n_valid = 0, argmin = -1, argmax = -1;
  float umin = 2.f, umax = -1.f;
  for_each_document(corpus, [&](const std::string&) {
    float u = philox_uniform(key, uint64_t(n));
    if (u < umin) umin = u, argmin = n;
    if (u > umax) umax = u, argmax = n;
    n_valid += split_is_valid(o.seed, o.valid_fraction, n);
    ++n;
  });
  if (n >= 2 && o.valid_fraction > 0 && n_valid == 0) plan.force_valid = argmin;
  if (n >= 2 && n_valid == n) plan.force_train = argmax;
  num_docs = n;
  return plan;
}

Tokenizer build_tokenizer(const CorpusFiles& corpus, const PrepareOptions& o, const SplitPlan& plan) {
  if (o.tokenizer == "byte") return Tokenizer::byte_level();
  std::unordered_map<std::string, int64_t> counts;
  int64_t i = 0, done = 0;
  Progress bar("bpe", corpus.total_bytes, o.progress && corpus.total_bytes >= kProgressMinBytes);
  for_each_document(
      corpus,
      [&](const std::string& doc) {
        if (!plan.is_valid(i++)) for_each_chunk(doc, [&](std::string_view c) { ++counts[std::string(c)]; });
      },
      [&](int64_t bytes) { bar.update(done += bytes, 0); });
  bar.finish();
  int64_t vocab = o.vocab_size ? o.vocab_size : kDefaultBpeVocab;
  return Tokenizer::bpe(train_bpe(counts, vocab - Tokenizer::kFirstMergeId, Tokenizer::kFirstMergeId));
}

// Shards of an earlier run in the same folder would otherwise linger next to the new ones.
void remove_old_shards(const std::string& dir) {
  static const std::regex kShard("(train|valid)-[0-9]{5}\\.h5(\\.tmp)?");
  for (const auto& e : fs::directory_iterator(dir))
    if (std::regex_match(e.path().filename().string(), kShard)) fs::remove(e.path());
}

}  // namespace

PrepareStats prepare_dataset(const PrepareOptions& o) {
  check_options(o);
  auto t0 = std::chrono::steady_clock::now();
  CorpusFiles corpus = collect_corpus_files(o.inputs);
  if (corpus.files.empty())
    throw DataError("no text files found under the --input paths (binary files are skipped)");
  PrepareStats st;
  st.files = int64_t(corpus.files.size());
  st.skipped_binary = corpus.skipped_binary;
  st.bytes = corpus.total_bytes;
  SplitPlan plan = plan_split(corpus, o, st.documents);
  if (st.documents == 0) throw DataError("the --input files contain no non-empty documents");

  std::error_code ec;
  fs::create_directories(o.output, ec);
  if (ec || !fs::is_directory(o.output))
    throw DataError(o.output + ": cannot create the output folder (" + ec.message() + ")");
  Tokenizer tok = build_tokenizer(corpus, o, plan);
  fs::remove(manifest_path(o.output), ec);  // a half-written dataset must not look complete
  remove_old_shards(o.output);
  tok.save(o.output);

  Manifest m;
  m.tokenizer = tok.kind();
  m.vocab_size = tok.vocab_size();
  m.eos_id = tok.eos_id();
  m.dtype = dtype_for_vocab(m.vocab_size);
  ShardWriter train(o.output, "train", m, o.shard_tokens), valid(o.output, "valid", m, o.shard_tokens);
  Progress bar("encode", corpus.total_bytes, o.progress && corpus.total_bytes >= kProgressMinBytes);
  int64_t index = 0, bytes_done = 0, tokens_done = 0;
  std::vector<int32_t> ids;
  for_each_document(
      corpus,
      [&](const std::string& doc) {
        ids.clear();
        tok.encode_append(doc, ids);
        ids.push_back(tok.eos_id());
        tokens_done += int64_t(ids.size());
        (plan.is_valid(index++) ? valid : train).add_document(ids);
      },
      [&](int64_t bytes) { bar.update(bytes_done += bytes, tokens_done); });
  bar.finish();
  m.train = train.finish();
  m.valid = valid.finish();
  m.save(o.output);

  st.vocab_size = m.vocab_size;
  st.train_tokens = m.train.tokens, st.valid_tokens = m.valid.tokens;
  st.train_docs = m.train.documents, st.valid_docs = m.valid.documents;
  st.train_shards = int64_t(m.train.shards.size()), st.valid_shards = int64_t(m.valid.shards.size());
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

}  // namespace moe::data
