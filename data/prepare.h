// `moe data prepare`: text/JSONL corpus -> tokenizer.json + HDF5 shards + manifest.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moe::data {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files, folders (recursive) or *.jsonl
  std::string output;               // dataset folder, created if missing
  std::string tokenizer = "byte";   // "byte" or "bpe"
  int64_t vocab_size = 0;           // bpe: total vocabulary (0 = kDefaultBpeVocab); byte: 0 or 257
  int64_t shard_tokens = int64_t(1) << 22;
  double valid_fraction = 0.05;
  uint64_t seed = 0;
  bool progress = true;  // progress bar on stderr for large inputs
};

constexpr int64_t kDefaultBpeVocab = 4096;
constexpr int64_t kProgressMinBytes = int64_t(8) << 20;  // smaller inputs finish before a bar helps

struct PrepareStats {
  int64_t files = 0, skipped_binary = 0, bytes = 0, documents = 0;
  int64_t train_tokens = 0, valid_tokens = 0, train_docs = 0, valid_docs = 0, train_shards = 0, valid_shards = 0;
  int64_t vocab_size = 0;
  double seconds = 0;
};

// ConfigError for bad options (naming the flag), DataError for bad input (naming the file).
PrepareStats prepare_dataset(const PrepareOptions& opts);

// Whether document `index` (0-based over the whole corpus) goes to valid, before the
// at-least-one adjustments: philox_uniform(rng_key(seed, "data.split"), index) < fraction.
bool split_is_valid(uint64_t seed, double fraction, int64_t index);

}  // namespace moe::data
