// Resharding: reading tensors a checkpoint saved under one layout into the shards of another.
// Every stored tensor is a set of pieces, each a box (start and shape per dimension) of the
// logical tensor held in one rank file; every wanted shard is a box too, and is filled from the
// pieces it overlaps. Expert parallelism cuts dim 0 today; tensor parallelism (any dim), pipeline
// stages (whole tensors in other rank files) and ZeRO (dim-0 row ranges) are boxes as well.
// Format: docs/checkpoint-format.md, "Slices and resharding".
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/model/params.h"

namespace moe {

struct Box {
  std::vector<int64_t> start, shape;  // per dimension; {} and {} for a scalar
  int64_t numel() const;
};

// The box of this rank's shard of a parameter (the whole tensor when replicated).
Box shard_box(const ParamInfo& p);

// manifest.json's layout.tensor_slices is
// {"NAME": {"global_shape": [...], "pieces": [{"rank": r, "start": [...], "shape": [...]}]}}.
// Tensors that are not listed are whole, in the file of rank 0. Each rank describes the split
// tensors it writes (writes(i) for table index i) in one string; merge_tensor_slices joins the
// strings of all ranks (an all-gather) into the manifest object, pieces in rank order.
std::string written_slices(const ParamTable& table, const std::function<bool(size_t)>& writes, int rank);
nlohmann::json merge_tensor_slices(const std::vector<std::string>& per_rank);

struct StoredPiece {
  int rank = 0;
  Box box;
};
struct StoredTensor {
  std::vector<int64_t> global_shape;
  std::vector<StoredPiece> pieces;
};

// The pieces of every tensor of a complete checkpoint, from its manifest (no rank file is read).
class CheckpointIndex {
 public:
  explicit CheckpointIndex(const std::string& dir);
  // By file name ("param/X", "adam_m/X"); null when the checkpoint does not hold it.
  const StoredTensor* find(const std::string& name) const;
  const std::string& dir() const { return dir_; }
  int world() const { return world_; }
  const nlohmann::json& manifest() const { return manifest_; }

 private:
  std::string dir_;
  int world_ = 1;
  nlohmann::json manifest_;
  std::map<std::string, StoredTensor> tensors_;
};

struct WantedTensor {
  std::string name;                   // "param/X"
  std::vector<int64_t> global_shape;  // what this model expects
  Box box;                            // this rank's part
  float* data;                        // box.numel() floats, row-major over box.shape
};

// Fills every wanted box from the pieces it overlaps, reading each rank file at most once (its
// checksum verified). DataError naming the tensor and file when a tensor is missing, its global
// shape differs (another model: e.g. moe.num_experts changed) or its pieces do not cover the box.
// Returns the manifest's meta (from the first file read).
nlohmann::json read_resharded(const CheckpointIndex& index, std::vector<WantedTensor>& wanted);

// Copies the overlap of a source box (src holds src_box) into a destination box; returns the
// number of elements copied.
int64_t copy_overlap(const float* src, const Box& src_box, float* dst, const Box& dst_box);

std::string shape_text(const std::vector<int64_t>& shape);  // "[4, 64, 64]"

}  // namespace moe
