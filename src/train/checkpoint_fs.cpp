// Checkpoint filesystem helpers: CRC-32 of files, fsync, durable rename, folder names.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "src/core/error.h"
#include "src/train/checkpoint_io.h"

namespace fs = std::filesystem;

namespace moe::ckpt {

namespace {

// Slice-by-8 tables of the reflected IEEE polynomial (the zlib CRC-32): ~8 bytes per step, so
// checksumming a multi-GB rank file costs about as much as reading it from the page cache.
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (int s = 1; s < 8; ++s)
    for (int i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  return t;
}

constexpr CrcTables kCrc = make_crc_tables();

uint32_t crc32_update(uint32_t crc, const unsigned char* p, size_t n) {
  crc = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;  // little-endian hosts (x86-64, aarch64)
    crc = kCrc[7][lo & 0xFF] ^ kCrc[6][(lo >> 8) & 0xFF] ^ kCrc[5][(lo >> 16) & 0xFF] ^
          kCrc[4][lo >> 24] ^ kCrc[3][hi & 0xFF] ^ kCrc[2][(hi >> 8) & 0xFF] ^
          kCrc[1][(hi >> 16) & 0xFF] ^ kCrc[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ kCrc[0][(crc ^ *p++) & 0xFF];
  return ~crc;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

uint64_t file_checksum(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw DataError("checkpoint file " + path + ": cannot open for reading (" + errno_text() + ")");
  std::vector<unsigned char> buf(1 << 20);
  uint32_t crc = 0;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) crc = crc32_update(crc, buf.data(), n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw DataError("checkpoint file " + path + ": read error while checksumming");
  return crc;
}

std::string step_dir_name(int64_t step) {
  MOE_CHECK(step >= 0 && step <= 99999999, "checkpoint step out of the 8-digit range: " + std::to_string(step));
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

namespace detail {

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError("checkpoint: cannot open " + path + " to fsync (" + errno_text() + ")");
  const int rc = ::fsync(fd);
  const std::string why = rc != 0 ? errno_text() : "";
  ::close(fd);
  if (rc != 0) throw DataError("checkpoint: fsync of " + path + " failed (" + why + "); is the disk full?");
}

void durable_rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw DataError("checkpoint: cannot rename " + from + " to " + to + " (" + errno_text() + ")");
  fsync_path(fs::path(to).parent_path().string());
}

void write_text_durably(const std::string& path, const std::string& text) {
  const std::string part = path + ".part";
  {
    std::ofstream out(part, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw DataError("checkpoint: cannot write " + part + "; is the disk full or the folder unwritable?");
  }
  fsync_path(part);
  durable_rename(part, path);
}

std::string checksum_hex(uint64_t value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "crc32:%08llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string rank_file_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank_%05d.h5", rank);
  return buf;
}

bool parse_step_dir_name(const std::string& name, int64_t* step) {
  if (name.size() != 13 || name.compare(0, 5, "step_") != 0) return false;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + (name[i] - '0');
  }
  *step = v;
  return true;
}

bool is_temp_dir_name(const std::string& name) {
  return name.compare(0, 5, "step_") == 0 && name.find(".tmp-") != std::string::npos;
}

bool is_complete(const std::string& dir) {
  int64_t step = -1;
  if (!parse_step_dir_name(fs::path(dir).filename().string(), &step)) return false;
  try {
    const nlohmann::json m = read_manifest(dir);
    if (m.at("step").get<int64_t>() != step) return false;
    for (const auto& r : m.at("ranks"))
      if (!fs::is_regular_file(fs::path(dir) / r.at("file").get<std::string>())) return false;
  } catch (const std::exception&) {
    return false;  // unreadable or malformed: not a usable checkpoint
  }
  return true;
}

}  // namespace detail
}  // namespace moe::ckpt
