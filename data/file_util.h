// Small file helpers for the data pipeline: whole-file reads, atomic writes, checksums.
#pragma once
#include <cstdint>
#include <string>

namespace moe::data {

// Whole file as bytes; DataError naming the file when it cannot be read.
std::string read_file(const std::string& path);

// Writes `bytes` to `path` through `path.tmp` + rename, so readers never see a partial file.
void write_file_atomic(const std::string& path, const std::string& bytes);

// rename(2) with a DataError naming both files on failure.
void rename_file(const std::string& from, const std::string& to);

// FNV-1a 64 of the file's bytes (the manifest's per-shard checksum, docs/data-format.md).
uint64_t fnv1a64_file(const std::string& path);
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 14695981039346656037ull);
std::string hex64(uint64_t v);  // 16 lower-case hex digits

}  // namespace moe::data
