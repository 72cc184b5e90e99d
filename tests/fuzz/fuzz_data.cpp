// libFuzzer target: a prepared dataset. First byte: 0 = the rest is manifest.json (loaded, then
// the train split opened); 1 = the rest is [u32 tokens][u32 documents] + a shard file, which the
// harness lists in a manifest with its true checksum so the HDF5 checks and reads are reached.
#include <cstring>
#include <filesystem>
#include <vector>

#include "data/file_util.h"
#include "data/manifest.h"
#include "data/shard_set.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string dir = moe::fuzz::scratch_dir() + "/data";
  fs::remove_all(dir);
  fs::create_directories(dir);
  try {
    if (data[0] == 0) {
      moe::fuzz::write_file(moe::data::manifest_path(dir), data + 1, size - 1);
      moe::data::Manifest m = moe::data::Manifest::load(dir);
      moe::data::ShardSet s(dir, m, "train", 1 << 20);
    } else {
      if (size < 9) return 0;
      uint32_t tokens, docs;
      std::memcpy(&tokens, data + 1, 4);
      std::memcpy(&docs, data + 5, 4);
      const uint8_t* file = data + 9;
      const size_t n = size - 9;
      moe::fuzz::write_file(dir + "/train-00000.h5", file, n);
      moe::data::Manifest m;
      m.tokenizer = "byte";
      m.vocab_size = 260;
      m.eos_id = 256;
      m.train.tokens = tokens;
      m.train.documents = docs;
      m.train.shards.push_back({"train-00000.h5", tokens, docs, moe::data::fnv1a64(file, n)});
      moe::data::ShardSet s(dir, m, "train", 260);
      std::vector<int32_t> out(64);
      const int64_t count = std::min<int64_t>(s.num_tokens(), 64);
      if (count > 0) s.read(s.num_tokens() - count, count, out.data());
    }
  } catch (const moe::Error&) {
  }
  return 0;
}
