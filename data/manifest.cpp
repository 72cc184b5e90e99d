#include "data/manifest.h"

#include <filesystem>

#include "data/file_util.h"
#include "src/core/error.h"

namespace moe::data {

std::string manifest_path(const std::string& dir) { return (std::filesystem::path(dir) / "manifest.json").string(); }

const SplitEntry& Manifest::split(const std::string& name) const {
  if (name == "train") return train;
  MOE_CHECK(name == "valid", "unknown split " + name);
  return valid;
}

namespace {

nlohmann::json split_json(const SplitEntry& s) {
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& sh : s.shards)
    shards.push_back({{"file", sh.file}, {"tokens", sh.tokens}, {"documents", sh.documents},
                      {"fnv1a64", hex64(sh.checksum)}});
  return {{"tokens", s.tokens}, {"documents", s.documents}, {"shards", shards}};
}

template <class T>
T get(const nlohmann::json& j, const char* key, const std::string& path, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw DataError(path + ": missing key \"" + where + key + "\"; re-run `moe data prepare`");
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    throw DataError(path + ": key \"" + where + key + "\" has the wrong type; re-run `moe data prepare`");
  }
}

SplitEntry parse_split(const nlohmann::json& j, const std::string& path, const std::string& name) {
  std::string where = "splits." + name + ".";
  SplitEntry s;
  s.tokens = get<int64_t>(j, "tokens", path, where);
  s.documents = get<int64_t>(j, "documents", path, where);
  auto shards = get<nlohmann::json>(j, "shards", path, where);
  if (!shards.is_array()) throw DataError(path + ": \"" + where + "shards\" is not a list");
  int64_t sum = 0;
  for (const auto& sj : shards) {
    ShardEntry e;
    e.file = get<std::string>(sj, "file", path, where + "shards[].");
    e.tokens = get<int64_t>(sj, "tokens", path, where + "shards[].");
    e.documents = get<int64_t>(sj, "documents", path, where + "shards[].");
    std::string hex = get<std::string>(sj, "fnv1a64", path, where + "shards[].");
    if (e.file.empty() || e.file.find('/') != std::string::npos || e.tokens < 0)
      throw DataError(path + ": bad shard entry '" + e.file + "' in split " + name);
    try {
      size_t used = 0;
      e.checksum = std::stoull(hex, &used, 16);
      if (used != hex.size()) throw std::invalid_argument(hex);
    } catch (const std::exception&) {
      throw DataError(path + ": shard " + e.file + " has a malformed checksum '" + hex + "'");
    }
    sum += e.tokens;
    s.shards.push_back(e);
  }
  if (sum != s.tokens)
    throw DataError(path + ": split " + name + " lists " + std::to_string(s.tokens) + " tokens but its shards hold " +
                    std::to_string(sum));
  return s;
}

}  // namespace

nlohmann::json Manifest::to_json() const {
  return {{"format", "moe-shards"},
          {"version", version},
          {"tokenizer", tokenizer},
          {"tokenizer_file", "tokenizer.json"},
          {"vocab_size", vocab_size},
          {"eos_id", eos_id},
          {"dtype", dtype_name(dtype)},
          {"checksum", "fnv1a64"},
          {"splits", {{"train", split_json(train)}, {"valid", split_json(valid)}}}};
}

void Manifest::save(const std::string& dir) const { write_file_atomic(manifest_path(dir), to_json().dump(2) + "\n"); }

Manifest Manifest::load(const std::string& dir) {
  std::string path = manifest_path(dir);
  if (!std::filesystem::is_directory(dir))
    throw DataError(dir + ": dataset folder does not exist (create it with `moe data prepare --output " + dir + "`)");
  if (!std::filesystem::exists(path))
    throw DataError(path + ": manifest not found (is " + dir + " a dataset made by `moe data prepare`?)");
  nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw DataError(path + ": not valid JSON; re-run `moe data prepare`");
  Manifest m;
  m.version = get<int64_t>(j, "version", path, "");
  if (m.version != kFormatVersion)
    throw DataError(path + ": format version " + std::to_string(m.version) + " is not supported (this build reads " +
                    std::to_string(kFormatVersion) + "); re-run `moe data prepare`");
  m.tokenizer = get<std::string>(j, "tokenizer", path, "");
  m.vocab_size = get<int64_t>(j, "vocab_size", path, "");
  m.eos_id = get<int32_t>(j, "eos_id", path, "");
  m.dtype = parse_dtype(get<std::string>(j, "dtype", path, ""), path);
  if (m.vocab_size <= 0 || (m.dtype == TokenDtype::kUint16 && m.vocab_size > 65536))
    throw DataError(path + ": vocab_size " + std::to_string(m.vocab_size) + " does not fit dtype " + dtype_name(m.dtype));
  auto splits = get<nlohmann::json>(j, "splits", path, "");
  m.train = parse_split(get<nlohmann::json>(splits, "train", path, "splits."), path, "train");
  m.valid = parse_split(get<nlohmann::json>(splits, "valid", path, "splits."), path, "valid");
  return m;
}

}  // namespace moe::data
