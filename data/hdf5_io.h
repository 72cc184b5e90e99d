// Thin RAII layer over the HDF5 C API for shard files. Every failed HDF5 call becomes a
// moe::DataError naming the file; HDF5's own error printing is silenced.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moe::data {

// Silences HDF5's automatic error stack printing (idempotent, thread-safe).
void hdf5_quiet();

// Owns one hid_t and closes it with the matching H5*close.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept;
  ~H5Handle();
  hid_t get() const { return id_; }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

enum class TokenDtype { kUint16, kUint32 };
std::string dtype_name(TokenDtype d);
TokenDtype dtype_for_vocab(int64_t vocab_size);  // uint16 when every id fits
TokenDtype parse_dtype(const std::string& name, const std::string& file);  // DataError if unknown
int64_t dtype_bytes(TokenDtype d);

// What a shard file holds (see docs/data-format.md).
struct ShardContents {
  TokenDtype dtype = TokenDtype::kUint16;
  std::vector<uint32_t> tokens;
  std::vector<int64_t> doc_offsets;
  int64_t vocab_size = 0;
  std::string tokenizer;
  int64_t version = 0;
};

// Writes `path` (exactly that name; the caller handles temp-name-then-rename).
void write_shard(const std::string& path, const ShardContents& shard);

// Structure of a shard, read without its tokens: enough to read windows with pread().
struct ShardLayout {
  TokenDtype dtype = TokenDtype::kUint16;
  int64_t num_tokens = 0;
  int64_t num_docs = 0;
  int64_t tokens_file_offset = 0;  // byte offset of the contiguous `tokens` data in the file
  int64_t vocab_size = 0;
  std::string tokenizer;
  int64_t version = 0;
};
ShardLayout read_shard_layout(const std::string& path);

// Whole shard, for inspect and tests.
ShardContents read_shard(const std::string& path);

}  // namespace moe::data
