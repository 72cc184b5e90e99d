// Checkpoints: RUN_DIR/checkpoints/step_NNNNNNNN/ with one HDF5 file per rank and a manifest.json,
// written crash-safely (temp folder, fsync, rename). Format and protocol: docs/checkpoint-format.md.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::ckpt {

inline constexpr int kFormatVersion = 1;

struct TensorRef {             // a view of a caller-owned float buffer
  std::string name;            // e.g. "param/layers.0.attention.wq.weight"; '/' makes HDF5 groups
  std::vector<int64_t> shape;  // {} is a scalar
  float* data;                 // read on save, written on load
};

struct SaveRequest {
  std::string root;            // e.g. RUN_DIR/checkpoints
  int64_t step;                // 0 .. 99999999 (the folder name has 8 digits)
  int rank = 0, world = 1;
  nlohmann::json layout;       // {"dp":..,"tp":..,...}
  nlohmann::json meta;         // rank 0's meta is stored in the manifest
  std::vector<TensorRef> tensors;  // this rank's tensors
  int64_t keep = 0;            // keep the newest N complete checkpoints; <= 0 keeps all
};

// Collective when world > 1. Every rank calls, in this order and the same number of times:
// barrier() once (after rank 0 has prepared the temp folder), then gather_strings() twice (each
// rank's file report, then rank 0's commit status), so `gather_strings` must be an all-gather of
// one string per rank. With world == 1 neither is called (pass empty functions). Every rank
// returns the final folder path, or every rank throws moe::DataError (the message names the
// path) when any rank's write or rank 0's commit failed; the previous checkpoints stay intact.
std::string save(const SaveRequest& req,
                 const std::function<void()>& barrier,
                 const std::function<std::vector<std::string>(const std::string&)>& gather_strings);

// Latest (highest step) complete checkpoint under root, or nullopt. Temp folders and folders
// without a valid manifest or with a missing rank file are ignored.
std::optional<std::string> latest(const std::string& root);

// CHECKPOINT argument resolution: a checkpoint folder, or a run directory (meaning
// RUN_DIR/checkpoints' latest), or a checkpoints root; DataError (exit 3) naming the path if none
// is found.
std::string resolve(const std::string& path);

struct Loaded {
  int64_t step;
  nlohmann::json layout;
  nlohmann::json meta;
};

// Reads this rank's file into the given buffers. Verifies manifest, world size, the file's
// checksum, each tensor's presence, shape and dtype. Any mismatch or corruption -> moe::DataError
// naming the file and tensor. Tensors in the file that are not asked for are skipped.
Loaded load(const std::string& ckpt_dir, int rank, int world, std::vector<TensorRef>& tensors);

// Manifest only (for tools). DataError naming the file if it is missing or malformed.
nlohmann::json read_manifest(const std::string& ckpt_dir);

// CRC-32 (IEEE 802.3, the zlib / Python zlib.crc32 checksum) of a file's bytes, streamed.
uint64_t file_checksum(const std::string& path);

// "step_00000042": the folder name of a step.
std::string step_dir_name(int64_t step);

}  // namespace moe::ckpt
