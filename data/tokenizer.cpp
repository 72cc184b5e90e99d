#include "data/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/file_util.h"
#include "src/core/error.h"

namespace moe::data {

Tokenizer::Tokenizer(std::string kind, std::vector<Merge> merges) : kind_(std::move(kind)), merges_(std::move(merges)) {
  pieces_.reserve(kFirstMergeId + merges_.size());
  for (int i = 0; i < 256; ++i) pieces_.push_back(std::string(1, char(i)));
  pieces_.push_back("");  // <eos>
  for (size_t r = 0; r < merges_.size(); ++r) {
    auto [a, b] = merges_[r];
    MOE_CHECK(a >= 0 && b >= 0 && a < int32_t(pieces_.size()) && b < int32_t(pieces_.size()) && a != kEosId &&
                  b != kEosId,
              "merge refers to an unknown id");
    rank_.emplace(pair_key(a, b), int32_t(r));
    pieces_.push_back(pieces_[a] + pieces_[b]);
  }
}

Tokenizer Tokenizer::byte_level() { return Tokenizer("byte", {}); }

Tokenizer Tokenizer::bpe(std::vector<Merge> merges) { return Tokenizer("bpe", std::move(merges)); }

Tokenizer Tokenizer::load(const std::string& dir) {
  std::string path = (std::filesystem::path(dir) / kFileName).string();
  if (!std::filesystem::exists(path))
    throw DataError(path + ": tokenizer file not found (is " + dir + " a dataset made by `moe data prepare`?)");
  nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  auto bad = [&](const std::string& what) { return DataError(path + ": " + what + "; re-run `moe data prepare`"); };
  if (j.is_discarded() || !j.is_object()) throw bad("not valid JSON");
  if (!j.contains("kind") || !j["kind"].is_string()) throw bad("missing \"kind\"");
  std::string kind = j["kind"];
  if (kind == "byte") {
    Tokenizer t = byte_level();
    if (j.value("vocab_size", int64_t(-1)) != t.vocab_size()) throw bad("vocab_size does not match kind byte");
    return t;
  }
  if (kind != "bpe") throw bad("unknown tokenizer kind '" + kind + "' (expected byte or bpe)");
  if (!j.contains("merges") || !j["merges"].is_array()) throw bad("missing \"merges\"");
  std::vector<Merge> merges;
  for (const auto& m : j["merges"]) {
    if (!m.is_array() || m.size() != 2 || !m[0].is_number_integer() || !m[1].is_number_integer())
      throw bad("a merge is not a pair of ids");
    int64_t a = m[0], b = m[1], next = kFirstMergeId + int64_t(merges.size());
    if (a < 0 || b < 0 || a >= next || b >= next || a == kEosId || b == kEosId)
      throw bad("merge " + std::to_string(merges.size()) + " refers to an id not defined before it");
    merges.push_back({int32_t(a), int32_t(b)});
  }
  Tokenizer t = bpe(std::move(merges));
  if (j.value("vocab_size", int64_t(-1)) != t.vocab_size()) throw bad("vocab_size does not match its merges");
  return t;
}

void Tokenizer::save(const std::string& dir) const {
  nlohmann::json j;
  j["format"] = "moe-tokenizer";
  j["version"] = 1;
  j["kind"] = kind_;
  j["vocab_size"] = vocab_size();
  j["specials"] = {{"<eos>", kEosId}};
  nlohmann::json merges = nlohmann::json::array();
  for (auto [a, b] : merges_) merges.push_back({a, b});
  j["merges"] = merges;
  write_file_atomic((std::filesystem::path(dir) / kFileName).string(), j.dump() + "\n");
}

void Tokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  if (merges_.empty()) {
    for (char c : text) out.push_back(int32_t(uint8_t(c)));
    return;
  }
  for_each_chunk(text, [&](std::string_view chunk) { encode_chunk(chunk, rank_, kFirstMergeId, out); });
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size());
  encode_append(text, out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= int32_t(pieces_.size()))
      throw DataError("token id " + std::to_string(id) + " is outside the " + kind_ + " tokenizer's vocabulary of " +
                      std::to_string(pieces_.size()));
    out += pieces_[id];
  }
  return out;
}

}  // namespace moe::data
