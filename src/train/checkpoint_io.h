// Internal to the checkpoint module: rank-file HDF5 I/O and durable filesystem steps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/train/checkpoint.h"

namespace moe::ckpt::detail {

// Writes one float32 dataset per tensor into a new HDF5 file at `path` and fsyncs it.
// DataError naming the file (and tensor) on any failure; the partial file is left to the caller.
void write_rank_file(const std::string& path, const std::vector<TensorRef>& tensors);

// Reads each tensor's dataset from `path` into its buffer after checking dtype and shape.
void read_rank_file(const std::string& path, std::vector<TensorRef>& tensors);

// fsync a file or a folder; DataError naming it on failure.
void fsync_path(const std::string& path);
// rename(2) then fsync the destination's parent folder.
void durable_rename(const std::string& from, const std::string& to);
// Writes `text` to path (via path.part, fsync, rename).
void write_text_durably(const std::string& path, const std::string& text);

std::string checksum_hex(uint64_t value);       // "crc32:1a2b3c4d"
std::string rank_file_name(int rank);           // "rank_00003.h5"
// True for "step_NNNNNNNN" (exactly 8 digits); sets *step.
bool parse_step_dir_name(const std::string& name, int64_t* step);
// True for names carrying the temp suffix ("step_... .tmp-..."): never loaded, removed on save.
bool is_temp_dir_name(const std::string& name);
// A complete checkpoint folder: manifest parses, its step matches, every rank file exists.
bool is_complete(const std::string& dir);

}  // namespace moe::ckpt::detail
