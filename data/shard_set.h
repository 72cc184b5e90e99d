// One split of a prepared dataset as a single token stream. The constructor validates every
// shard against the manifest; reads then use pread() on the contiguous `tokens` data, so no
// HDF5 call happens on the loader's prefetch thread.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "data/manifest.h"

namespace moe::data {

class ShardSet {
 public:
  // DataError naming the file for: a missing shard, checksum mismatch, unreadable/truncated HDF5,
  // wrong dtype, counts or attributes that differ from the manifest, or a manifest vocabulary
  // larger than `model_vocab_size`.
  ShardSet(const std::string& dir, const Manifest& manifest, const std::string& split, int64_t model_vocab_size);
  ~ShardSet();
  ShardSet(const ShardSet&) = delete;
  ShardSet& operator=(const ShardSet&) = delete;

  int64_t num_tokens() const { return total_tokens_; }
  // Tokens [start, start + count) of the concatenated split. DataError naming the shard for an
  // id >= the vocabulary or a failed read.
  void read(int64_t start, int64_t count, int32_t* out);

 private:
  struct Shard {
    std::string path;
    int64_t begin = 0;  // first token's index in the split stream
    int64_t tokens = 0;
    int64_t file_offset = 0;
    TokenDtype dtype = TokenDtype::kUint16;
  };
  int fd_for(size_t shard);
  void read_piece(size_t shard, int64_t first, int64_t count, int32_t* out);

  std::vector<Shard> shards_;
  int64_t total_tokens_ = 0;
  int64_t max_id_ = 0;  // exclusive bound on valid ids
  // A few open descriptors, most recently used last: bounded however many shards there are.
  static constexpr size_t kMaxOpen = 16;
  std::vector<std::pair<size_t, int>> open_;
  std::vector<uint8_t> raw_;
  std::mutex mu_;
};

}  // namespace moe::data
