#include "data/file_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "src/core/error.h"

namespace moe::data {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  std::string bytes;
  in.seekg(0, std::ios::end);
  bytes.resize(size_t(in.tellg()));
  in.seekg(0, std::ios::beg);
  in.read(bytes.data(), std::streamsize(bytes.size()));
  if (!in) throw DataError(path + ": read failed");
  return bytes;
}

void rename_file(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw DataError("cannot rename " + from + " to " + to + " (" + std::strerror(errno) + ")");
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw DataError(tmp + ": cannot open for writing (" + std::strerror(errno) + ")");
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.flush();
    if (!out) throw DataError(tmp + ": write failed (disk full?)");
  }
  rename_file(tmp, path);
}

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t fnv1a64_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw DataError(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  std::vector<char> buf(1 << 20);
  uint64_t h = 14695981039346656037ull;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h = fnv1a64(buf.data(), n, h);
  bool err = std::ferror(f);
  std::fclose(f);
  if (err) throw DataError(path + ": read failed while computing its checksum");
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace moe::data
