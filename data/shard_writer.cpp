#include "data/shard_writer.h"

#include <cstdio>
#include <filesystem>

#include "data/file_util.h"
#include "src/core/error.h"

namespace moe::data {

std::string shard_file_name(const std::string& split, int64_t index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%05lld.h5", split.c_str(), static_cast<long long>(index));
  return buf;
}

ShardWriter::ShardWriter(std::string dir, std::string split, const Manifest& meta, int64_t shard_tokens)
    : dir_(std::move(dir)), split_(std::move(split)), meta_(meta), shard_tokens_(shard_tokens) {
  MOE_CHECK(shard_tokens_ > 0, "shard_tokens must be positive");
}

void ShardWriter::add_document(const std::vector<int32_t>& ids) {
  size_t pos = 0;
  bool first_piece = true;
  while (pos < ids.size()) {
    if (int64_t(cur_.tokens.size()) == shard_tokens_) flush();
    if (first_piece) cur_.doc_offsets.push_back(int64_t(cur_.tokens.size()));
    first_piece = false;
    size_t room = size_t(shard_tokens_) - cur_.tokens.size();
    size_t n = std::min(room, ids.size() - pos);
    for (size_t i = 0; i < n; ++i) {
      MOE_CHECK(ids[pos + i] >= 0 && ids[pos + i] < meta_.vocab_size, "token id outside the vocabulary");
      cur_.tokens.push_back(uint32_t(ids[pos + i]));
    }
    pos += n;
  }
  ++entry_.documents;
}

void ShardWriter::flush() {
  if (cur_.tokens.empty()) return;
  cur_.dtype = meta_.dtype;
  cur_.vocab_size = meta_.vocab_size;
  cur_.tokenizer = meta_.tokenizer;
  cur_.version = meta_.version;
  ShardEntry e;
  e.file = shard_file_name(split_, int64_t(entry_.shards.size()));
  std::string path = (std::filesystem::path(dir_) / e.file).string();
  write_shard(path + ".tmp", cur_);
  rename_file(path + ".tmp", path);
  e.tokens = int64_t(cur_.tokens.size());
  e.documents = int64_t(cur_.doc_offsets.size());
  e.checksum = fnv1a64_file(path);
  entry_.tokens += e.tokens;
  entry_.shards.push_back(e);
  cur_.tokens.clear();
  cur_.doc_offsets.clear();
}

SplitEntry ShardWriter::finish() {
  flush();
  return entry_;
}

}  // namespace moe::data
