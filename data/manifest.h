// DIR/manifest.json of a prepared dataset: tokenizer, dtype and the ordered shards of each split
// with their token and document counts and FNV-1a 64 checksums (docs/data-format.md).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/hdf5_io.h"

namespace moe::data {

constexpr int64_t kFormatVersion = 1;

struct ShardEntry {
  std::string file;  // relative to the dataset folder
  int64_t tokens = 0;
  int64_t documents = 0;
  uint64_t checksum = 0;  // FNV-1a 64 of the file's bytes
};

struct SplitEntry {
  int64_t tokens = 0;
  int64_t documents = 0;
  std::vector<ShardEntry> shards;
};

struct Manifest {
  int64_t version = kFormatVersion;
  std::string tokenizer;  // "byte" or "bpe"
  int64_t vocab_size = 0;
  int32_t eos_id = 0;
  TokenDtype dtype = TokenDtype::kUint16;
  SplitEntry train, valid;

  const SplitEntry& split(const std::string& name) const;  // "train" or "valid"
  nlohmann::json to_json() const;
  void save(const std::string& dir) const;  // atomically
  // DataError naming DIR/manifest.json when the folder or file is missing or malformed.
  static Manifest load(const std::string& dir);
};

std::string manifest_path(const std::string& dir);

}  // namespace moe::data
