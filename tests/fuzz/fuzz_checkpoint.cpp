// libFuzzer target: a checkpoint folder. First byte: 0 = the rest is manifest.json (read_manifest,
// then load); 1 = the rest is rank_00000.h5, listed by the harness in a manifest with its true
// CRC-32 and one tensor param/w of shape [4], so load() reaches the HDF5 reads.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "src/core/error.h"
#include "src/train/checkpoint.h"
#include "tests/fuzz/fuzz_util.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string dir = moe::fuzz::scratch_dir() + "/step_00000001";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<float> w(4);
  std::vector<moe::ckpt::TensorRef> tensors = {{"param/w", {4}, w.data()}};
  try {
    if (data[0] == 0) {
      moe::fuzz::write_file(dir + "/manifest.json", data + 1, size - 1);
      (void)moe::ckpt::read_manifest(dir);
      (void)moe::ckpt::load(dir, 0, 1, tensors);
    } else {
      const std::string file = dir + "/rank_00000.h5";
      moe::fuzz::write_file(file, data + 1, size - 1);
      char crc[16];
      std::snprintf(crc, sizeof(crc), "%08llx", (unsigned long long)moe::ckpt::file_checksum(file));
      nlohmann::json m = {
          {"format", "moe-checkpoint"}, {"format_version", 1}, {"step", 1}, {"world", 1},
          {"layout", nlohmann::json::object()}, {"meta", nlohmann::json::object()}, {"checksum", "crc32"},
          {"ranks", {{{"rank", 0}, {"file", "rank_00000.h5"}, {"bytes", size - 1}, {"checksum", std::string("crc32:") + crc},
                      {"tensors", {{{"name", "param/w"}, {"shape", {4}}, {"dtype", "float32"}}}}}}}};
      std::ofstream(dir + "/manifest.json") << m.dump();
      (void)moe::ckpt::load(dir, 0, 1, tensors);
    }
  } catch (const moe::Error&) {
  }
  return 0;
}
