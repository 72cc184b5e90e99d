// Writes one split's token stream into shards of at most `shard_tokens` tokens
// (DIR/<split>-NNNNN.h5, each through a temporary name and a rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/manifest.h"

namespace moe::data {

class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string split, const Manifest& meta, int64_t shard_tokens);
  // Appends one document's ids (with its <eos>); a document may continue into the next shard.
  void add_document(const std::vector<int32_t>& ids);
  // Flushes the last partial shard and returns the split's manifest entry.
  SplitEntry finish();

 private:
  void flush();
  std::string dir_, split_;
  const Manifest& meta_;
  int64_t shard_tokens_;
  ShardContents cur_;
  SplitEntry entry_;
};

std::string shard_file_name(const std::string& split, int64_t index);  // "train-00000.h5"

}  // namespace moe::data
