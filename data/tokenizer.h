// Tokenizers of a prepared dataset, saved as DIR/tokenizer.json so train, eval and generation
// use the one `moe data prepare` used. Ids 0..255 are bytes, 256 is <eos>, BPE merges follow.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/bpe.h"

namespace moe::data {

class Tokenizer {
 public:
  static constexpr int32_t kEosId = 256;
  static constexpr int32_t kFirstMergeId = 257;
  static constexpr const char* kFileName = "tokenizer.json";

  static Tokenizer byte_level();
  static Tokenizer bpe(std::vector<Merge> merges);
  // Reads DIR/tokenizer.json; DataError naming the file when missing or malformed.
  static Tokenizer load(const std::string& dir);
  void save(const std::string& dir) const;  // DIR/tokenizer.json, written atomically

  // Text -> ids; no <eos> is added (prepare appends one after every document).
  std::vector<int32_t> encode(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<int32_t>& out) const;
  // Ids -> bytes; special ids decode to nothing. DataError for an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;
  int64_t vocab_size() const { return int64_t(pieces_.size()); }
  int32_t eos_id() const { return kEosId; }
  std::string kind() const { return kind_; }
  const std::vector<Merge>& merges() const { return merges_; }

 private:
  Tokenizer(std::string kind, std::vector<Merge> merges);
  std::string kind_;
  std::vector<Merge> merges_;
  std::unordered_map<uint64_t, int32_t> rank_;  // pair -> merge rank
  std::vector<std::string> pieces_;             // id -> bytes
};

}  // namespace moe::data
