#include "data/inspect.h"

#include <algorithm>
#include <vector>

#include "data/file_util.h"
#include "data/manifest.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"
#include "src/core/error.h"

namespace moe::data {

namespace {

constexpr int64_t kSampleTokens = 256;

void print_split(const Manifest& m, const std::string& name, std::ostream& out) {
  const SplitEntry& s = m.split(name);
  out << name << ": " << s.tokens << " tokens, " << s.documents << " documents, " << s.shards.size() << " shards\n";
  for (const auto& e : s.shards)
    out << "  " << e.file << "  tokens " << e.tokens << "  documents " << e.documents << "  fnv1a64 "
        << hex64(e.checksum) << "  ok\n";
}

}  // namespace

void inspect_dataset(const std::string& dir, std::ostream& out) {
  Manifest m = Manifest::load(dir);
  Tokenizer tok = Tokenizer::load(dir);
  if (tok.kind() != m.tokenizer || tok.vocab_size() != m.vocab_size)
    throw DataError(dir + "/tokenizer.json: tokenizer (" + tok.kind() + ", vocab " + std::to_string(tok.vocab_size()) +
                    ") does not match manifest.json (" + m.tokenizer + ", vocab " + std::to_string(m.vocab_size) +
                    "); re-run `moe data prepare`");
  out << "dataset " << dir << "\n";
  out << "format version " << m.version << ", tokenizer " << m.tokenizer << ", vocab_size " << m.vocab_size
      << ", eos_id " << m.eos_id << ", dtype " << dtype_name(m.dtype) << "\n";
  ShardSet train(dir, m, "train", m.vocab_size);  // validation throws on the first bad shard
  ShardSet valid(dir, m, "valid", m.vocab_size);
  print_split(m, "train", out);
  print_split(m, "valid", out);
  out << "checksums: all " << m.train.shards.size() + m.valid.shards.size() << " shards verified\n";

  std::vector<int32_t> ids(size_t(std::min<int64_t>(kSampleTokens, train.num_tokens())));
  train.read(0, int64_t(ids.size()), ids.data());
  auto eos = std::find(ids.begin(), ids.end(), m.eos_id);
  ids.erase(eos, ids.end());
  out << "sample (first train document, up to " << kSampleTokens << " tokens):\n" << tok.decode(ids) << "\n";
}

}  // namespace moe::data
