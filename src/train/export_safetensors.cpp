// safetensors, written and read here (no dependency): 8-byte little-endian header length N, N
// bytes of JSON {"__metadata__": {...}, NAME: {"dtype": "F32", "shape": [...], "data_offsets":
// [begin, end]}, ...}, then the raw little-endian data; offsets count from the end of the header.
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "src/core/error.h"
#include "src/train/export.h"
#include "src/train/export_io.h"

namespace moe {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian: add a byte swap");

namespace {

constexpr const char* kConfigKey = "moe.config";

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DataError("safetensors file " + path + ": " + what);
}

class SafetensorsFile final : public ExportedFile {
 public:
  explicit SafetensorsFile(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) fail(path, "cannot open it; check the path and permissions");
    in_.seekg(0, std::ios::end);
    const int64_t size = int64_t(in_.tellg());
    in_.seekg(0);
    uint64_t n = 0;
    if (size < 8 || !in_.read(reinterpret_cast<char*>(&n), 8)) fail(path, "shorter than its 8-byte header length");
    if (n > uint64_t(size - 8)) fail(path, "header length " + std::to_string(n) + " runs past the end of the file");
    std::string text(size_t(n), '\0');
    in_.read(text.data(), std::streamsize(n));
    data_start_ = 8 + int64_t(n);
    const int64_t data_bytes = size - data_start_;
    nlohmann::json h;
    try {
      h = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail(path, std::string("the header is not valid JSON (") + e.what() + ")");
    }
    if (!h.is_object()) fail(path, "the header is not a JSON object");
    for (const auto& [name, t] : h.items()) {
      if (name == "__metadata__") {
        if (t.is_object() && t.contains(kConfigKey) && t[kConfigKey].is_string()) config_ = t[kConfigKey];
        continue;
      }
      if (!t.is_object() || t.value("dtype", "") != "F32")
        fail(path, "tensor " + name + " is not F32 (the only dtype moe exports and imports)");
      Entry e;
      try {
        e.shape = t.at("shape").get<std::vector<int64_t>>();
        auto off = t.at("data_offsets").get<std::vector<int64_t>>();
        if (off.size() != 2) throw std::runtime_error("two data_offsets");
        e.begin = off[0];
        e.end = off[1];
      } catch (const std::exception&) {
        fail(path, "tensor " + name + " lacks a valid shape or data_offsets");
      }
      if (e.begin < 0 || e.end > data_bytes || e.end - e.begin != 4 * numel(e.shape))
        fail(path, "tensor " + name + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                       "] do not fit its shape or the file");
      entries_[name] = e;
    }
    if (config_.empty())
      fail(path, "the header's __metadata__ has no \"" + std::string(kConfigKey) +
                     "\" (not written by moe export); moe needs the config stored with the weights");
  }
  const std::string& path() const override { return path_; }
  const std::string& config_text() const override { return config_; }
  std::vector<int64_t> shape(const std::string& name) const override { return entry(name).shape; }
  void read(const std::string& name, float* out) const override {
    const Entry& e = entry(name);
    in_.clear();
    in_.seekg(data_start_ + e.begin);
    if (!in_.read(reinterpret_cast<char*>(out), e.end - e.begin)) fail(path_, "cannot read tensor " + name);
  }

 private:
  struct Entry {
    std::vector<int64_t> shape;
    int64_t begin = 0, end = 0;
  };
  const Entry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end())
      fail(path_, "has no tensor " + name + " that this model needs: it was exported from another model");
    return it->second;
  }
  std::string path_, config_;
  mutable std::ifstream in_;
  int64_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
};

}  // namespace

std::unique_ptr<ExportedFile> open_safetensors(const std::string& path) {
  return std::make_unique<SafetensorsFile>(path);
}

void write_safetensors(const std::string& path, const std::vector<ExportTensor>& tensors,
                       const std::string& config_text) {
  nlohmann::ordered_json h;
  // "format": "pt" lets Hugging Face loaders accept the file; the config rides along as a string.
  h["__metadata__"] = {{"format", "pt"}, {kConfigKey, config_text}};
  int64_t offset = 0;
  for (const auto& t : tensors) {
    const int64_t bytes = 4 * numel(t.shape);
    h[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  const std::string part = path + ".part";
  {
    std::ofstream out(part, std::ios::binary | std::ios::trunc);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(header.data(), std::streamsize(header.size()));
    for (const auto& t : tensors) out.write(reinterpret_cast<const char*>(t.data), 4 * numel(t.shape));
    out.flush();
    if (!out) throw DataError("cannot write " + part + " (disk full or no permission); nothing was exported");
  }
  std::error_code ec;
  std::filesystem::rename(part, path, ec);
  if (ec) throw DataError("cannot rename " + part + " to " + path + ": " + ec.message());
}

}  // namespace moe
