#include "data/shard_set.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "data/file_util.h"
#include "src/core/error.h"

namespace moe::data {

namespace {

[[noreturn]] void mismatch(const std::string& path, const std::string& what) {
  throw DataError(path + ": " + what + "; the shard does not match manifest.json (re-run `moe data prepare`)");
}

}  // namespace

ShardSet::ShardSet(const std::string& dir, const Manifest& manifest, const std::string& split,
                   int64_t model_vocab_size) {
  if (manifest.vocab_size > model_vocab_size)
    throw DataError(manifest_path(dir) + ": the dataset's vocabulary (" + std::to_string(manifest.vocab_size) +
                    ") is larger than the model's vocab_size (" + std::to_string(model_vocab_size) +
                    "); set model.vocab_size >= " + std::to_string(manifest.vocab_size));
  max_id_ = std::min(manifest.vocab_size, model_vocab_size);
  for (const auto& e : manifest.split(split).shards) {
    std::string path = (std::filesystem::path(dir) / e.file).string();
    if (!std::filesystem::exists(path)) mismatch(path, "shard listed in the manifest is missing");
    uint64_t sum = fnv1a64_file(path);
    if (sum != e.checksum)
      throw DataError(path + ": checksum mismatch (fnv1a64 " + hex64(sum) + ", manifest says " + hex64(e.checksum) +
                      "); the file is corrupt or was changed, re-run `moe data prepare`");
    ShardLayout layout = read_shard_layout(path);
    if (layout.dtype != manifest.dtype)
      mismatch(path, "tokens have dtype " + dtype_name(layout.dtype) + ", manifest says " + dtype_name(manifest.dtype));
    if (layout.num_tokens != e.tokens)
      mismatch(path, "holds " + std::to_string(layout.num_tokens) + " tokens, manifest says " + std::to_string(e.tokens));
    if (layout.num_docs != e.documents)
      mismatch(path, "holds " + std::to_string(layout.num_docs) + " documents, manifest says " +
                         std::to_string(e.documents));
    if (layout.vocab_size != manifest.vocab_size)
      mismatch(path, "attribute vocab_size is " + std::to_string(layout.vocab_size) + ", manifest says " +
                         std::to_string(manifest.vocab_size));
    if (layout.tokenizer != manifest.tokenizer)
      mismatch(path, "attribute tokenizer is '" + layout.tokenizer + "', manifest says '" + manifest.tokenizer + "'");
    if (layout.version != manifest.version) mismatch(path, "attribute version differs from the manifest's");
    int64_t bytes = layout.num_tokens * dtype_bytes(layout.dtype);
    if (layout.num_tokens > 0 && layout.tokens_file_offset + bytes > int64_t(std::filesystem::file_size(path)))
      mismatch(path, "tokens extend past the end of the file (truncated)");
    shards_.push_back({path, total_tokens_, e.tokens, layout.tokens_file_offset, layout.dtype});
    total_tokens_ += e.tokens;
  }
}

ShardSet::~ShardSet() {
  for (auto& [shard, fd] : open_) ::close(fd);
}

int ShardSet::fd_for(size_t shard) {
  for (size_t i = 0; i < open_.size(); ++i) {
    if (open_[i].first == shard) {
      auto hit = open_[i];
      open_.erase(open_.begin() + long(i));
      open_.push_back(hit);
      return hit.second;
    }
  }
  if (open_.size() == kMaxOpen) {
    ::close(open_.front().second);
    open_.erase(open_.begin());
  }
  int fd = ::open(shards_[shard].path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(shards_[shard].path + ": cannot open shard (" + std::strerror(errno) + ")");
  open_.push_back({shard, fd});
  return fd;
}

void ShardSet::read_piece(size_t shard, int64_t first, int64_t count, int32_t* out) {
  const Shard& s = shards_[shard];
  const int64_t width = dtype_bytes(s.dtype);
  raw_.resize(size_t(count * width));
  int fd = fd_for(shard);
  int64_t want = count * width, got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, raw_.data() + got, size_t(want - got), off_t(s.file_offset + first * width + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw DataError(s.path + ": short read of tokens (the shard was truncated after validation?)");
    got += n;
  }
  // Shards are little-endian (checked at open); so is every host this builds for.
  uint32_t bad = 0;
  if (s.dtype == TokenDtype::kUint16) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, raw_.data() + 2 * i, 2);
      out[i] = int32_t(v);
      bad |= uint32_t(v >= max_id_);
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      uint32_t v;
      std::memcpy(&v, raw_.data() + 4 * i, 4);
      out[i] = int32_t(v);
      bad |= uint32_t(int64_t(v) >= max_id_);
    }
  }
  if (bad) {
    for (int64_t i = 0; i < count; ++i)
      if (uint32_t(out[i]) >= uint64_t(max_id_))
        throw DataError(s.path + ": token id " + std::to_string(uint32_t(out[i])) + " at position " +
                        std::to_string(first + i) + " is >= the vocabulary size " + std::to_string(max_id_));
  }
}

void ShardSet::read(int64_t start, int64_t count, int32_t* out) {
  MOE_CHECK(start >= 0 && count >= 0 && start + count <= total_tokens_, "token range outside the split");
  if (count == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::upper_bound(shards_.begin(), shards_.end(), start,
                             [](int64_t v, const Shard& s) { return v < s.begin; });
  size_t shard = size_t(it - shards_.begin()) - 1;
  while (count > 0) {
    const Shard& s = shards_[shard];
    int64_t first = start - s.begin;
    int64_t n = std::min(count, s.tokens - first);
    if (n > 0) {
      read_piece(shard, first, n, out);
      out += n;
      start += n;
      count -= n;
    }
    ++shard;
  }
}

}  // namespace moe::data
