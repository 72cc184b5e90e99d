#include "src/train/reshard.h"

#include <algorithm>
#include <cstring>

#include "src/core/error.h"
#include "src/train/checkpoint.h"

namespace moe {

int64_t Box::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Box shard_box(const ParamInfo& p) { return Box{shard_start(p), p.shape}; }

std::string written_slices(const ParamTable& table, const std::function<bool(size_t)>& writes, int rank) {
  nlohmann::json out = nlohmann::json::array();
  const auto& ps = table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!ps[i].shard.split() || !writes(i)) continue;
    const Box b = shard_box(ps[i]);
    out.push_back({{"name", ps[i].name}, {"global_shape", ps[i].shard.global_shape}, {"rank", rank},
                   {"start", b.start}, {"shape", b.shape}});
  }
  return out.dump();
}

nlohmann::json merge_tensor_slices(const std::vector<std::string>& per_rank) {
  nlohmann::json out = nlohmann::json::object();
  for (const std::string& text : per_rank)
    for (const auto& s : nlohmann::json::parse(text)) {
      nlohmann::json& t = out[s.at("name").get<std::string>()];
      t["global_shape"] = s.at("global_shape");
      t["pieces"].push_back({{"rank", s.at("rank")}, {"start", s.at("start")}, {"shape", s.at("shape")}});
    }
  return out;
}

namespace {

[[noreturn]] void bad_manifest(const std::string& dir, const std::string& what) {
  throw DataError("checkpoint " + dir + "/manifest.json: " + what + "; the manifest is damaged");
}

std::vector<int64_t> int_list(const nlohmann::json& j, const std::string& dir, const std::string& what) {
  if (!j.is_array()) bad_manifest(dir, what + " is not a list");
  std::vector<int64_t> v;
  for (const auto& x : j) {
    if (!x.is_number_integer()) bad_manifest(dir, what + " holds a non-integer");
    v.push_back(x.get<int64_t>());
  }
  return v;
}

// "param/layers.0.moe.experts.w1" -> "layers.0.moe.experts.w1"
std::string logical_name(const std::string& file_name) {
  const size_t slash = file_name.find('/');
  return slash == std::string::npos ? file_name : file_name.substr(slash + 1);
}

std::string rank_file(const std::string& dir, int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/rank_%05d.h5", rank);
  return dir + buf;
}

}  // namespace

CheckpointIndex::CheckpointIndex(const std::string& dir) : dir_(dir), manifest_(ckpt::read_manifest(dir)) {
  world_ = manifest_.value("world", 1);
  const nlohmann::json layout = manifest_.value("layout", nlohmann::json::object());
  const nlohmann::json slices = layout.value("tensor_slices", nlohmann::json::object());
  // Checkpoints written before tensor_slices: expert slice j along dim 0, in the rank it names.
  std::map<int, int64_t> legacy_offset;
  if (!layout.contains("tensor_slices"))
    for (const auto& sl : layout.value("expert_slices", nlohmann::json::array()))
      legacy_offset[sl.value("rank", 0)] = sl.value("offset", int64_t(0));
  for (const auto& r : manifest_.value("ranks", nlohmann::json::array())) {
    const int rank = r.value("rank", -1);
    if (rank < 0 || rank >= world_) bad_manifest(dir, "a rank entry without a valid rank");
    for (const auto& t : r.value("tensors", nlohmann::json::array())) {
      const std::string name = t.value("name", "");
      StoredPiece piece{rank, {{}, int_list(t.value("shape", nlohmann::json()), dir, name + " shape")}};
      piece.box.start.assign(piece.box.shape.size(), 0);
      StoredTensor& st = tensors_[name];
      const std::string logical = logical_name(name);
      if (slices.contains(logical)) {
        const auto& s = slices[logical];
        st.global_shape = int_list(s.value("global_shape", nlohmann::json()), dir, logical + " global_shape");
        for (const auto& p : s.value("pieces", nlohmann::json::array()))
          if (p.value("rank", -1) == rank) piece.box.start = int_list(p.value("start", nlohmann::json()), dir, logical);
      } else if (legacy_offset.size() > 1 && logical.find(".moe.experts.") != std::string::npos) {
        piece.box.start[0] = legacy_offset[rank];
      }
      if (piece.box.start.size() != piece.box.shape.size()) bad_manifest(dir, logical + ": start and shape differ in rank");
      st.pieces.push_back(std::move(piece));
    }
  }
  // Whole tensors and legacy slices: the global shape is the bounding box of the pieces.
  for (auto& [name, st] : tensors_) {
    if (!st.global_shape.empty() || st.pieces.front().box.shape.empty()) continue;
    st.global_shape.assign(st.pieces.front().box.shape.size(), 0);
    for (const auto& p : st.pieces)
      for (size_t d = 0; d < st.global_shape.size(); ++d)
        st.global_shape[d] = std::max(st.global_shape[d], p.box.start[d] + p.box.shape[d]);
  }
}

const StoredTensor* CheckpointIndex::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

int64_t copy_overlap(const float* src, const Box& sb, float* dst, const Box& db) {
  const size_t nd = sb.shape.size();
  MOE_CHECK(db.shape.size() == nd && sb.start.size() == nd && db.start.size() == nd, "copy_overlap: rank mismatch");
  if (nd == 0) {
    dst[0] = src[0];
    return 1;
  }
  std::vector<int64_t> lo(nd), hi(nd), sstride(nd, 1), dstride(nd, 1);
  for (size_t d = 0; d < nd; ++d) {
    lo[d] = std::max(sb.start[d], db.start[d]);
    hi[d] = std::min(sb.start[d] + sb.shape[d], db.start[d] + db.shape[d]);
    if (lo[d] >= hi[d]) return 0;
  }
  for (size_t d = nd - 1; d > 0; --d) {
    sstride[d - 1] = sstride[d] * sb.shape[d];
    dstride[d - 1] = dstride[d] * db.shape[d];
  }
  const int64_t run = hi[nd - 1] - lo[nd - 1];
  int64_t copied = 0;
  std::vector<int64_t> idx = lo;  // an odometer over the overlap's rows (every dim but the last)
  while (true) {
    int64_t so = 0, dof = 0;
    for (size_t d = 0; d < nd; ++d) {
      so += (idx[d] - sb.start[d]) * sstride[d];
      dof += (idx[d] - db.start[d]) * dstride[d];
    }
    std::memcpy(dst + dof, src + so, sizeof(float) * size_t(run));
    copied += run;
    int d = int(nd) - 2;
    for (; d >= 0; --d) {
      if (++idx[size_t(d)] < hi[size_t(d)]) break;
      idx[size_t(d)] = lo[size_t(d)];
    }
    if (d < 0) return copied;
  }
}

nlohmann::json read_resharded(const CheckpointIndex& index, std::vector<WantedTensor>& wanted) {
  const std::string& dir = index.dir();
  // Which pieces each rank file must supply.
  struct Need {
    size_t wanted;
    const StoredPiece* piece;
  };
  std::map<int, std::vector<Need>> by_file;
  for (size_t i = 0; i < wanted.size(); ++i) {
    const WantedTensor& w = wanted[i];
    const StoredTensor* st = index.find(w.name);
    if (!st && w.name.rfind("adam_", 0) == 0)
      throw DataError("checkpoint " + dir + " has no optimizer state " + w.name +
                      " (the tensor was frozen when it was saved): drop --keep-optimizer or freeze it too");
    if (!st)
      throw DataError("checkpoint " + dir + " has no tensor " + w.name + " that this model needs (" +
                      shape_text(w.global_shape) +
                      "): it was saved from another model; use the checkpoint's model.* and moe.* settings");
    if (st->global_shape != w.global_shape)
      throw DataError("tensor " + w.name + " in " + rank_file(dir, st->pieces.front().rank) + " has shape " +
                      shape_text(st->global_shape) + " but this model's is " + shape_text(w.global_shape) +
                      ": model.* and moe.* (e.g. moe.num_experts) must match the checkpoint's config; only the "
                      "layout (parallel.*) may change");
    for (const auto& p : st->pieces) {
      Box probe = p.box;  // overlap test without copying
      bool overlaps = true;
      for (size_t d = 0; d < probe.shape.size(); ++d)
        overlaps = overlaps && std::max(probe.start[d], w.box.start[d]) <
                                   std::min(probe.start[d] + probe.shape[d], w.box.start[d] + w.box.shape[d]);
      if (overlaps) by_file[p.rank].push_back({i, &p});
    }
  }
  std::vector<int64_t> covered(wanted.size(), 0);
  nlohmann::json meta;
  bool have_meta = false;
  for (auto& [rank, needs] : by_file) {
    // One load per file: its checksum is verified once. Pieces are read whole, then cut.
    std::vector<std::vector<float>> bufs(needs.size());
    std::vector<ckpt::TensorRef> refs;
    for (size_t k = 0; k < needs.size(); ++k) {
      bufs[k].resize(size_t(needs[k].piece->box.numel()));
      refs.push_back({wanted[needs[k].wanted].name, needs[k].piece->box.shape, bufs[k].data()});
    }
    ckpt::Loaded l = ckpt::load(dir, rank, index.world(), refs);
    if (!have_meta) meta = l.meta, have_meta = true;
    for (size_t k = 0; k < needs.size(); ++k) {
      WantedTensor& w = wanted[needs[k].wanted];
      covered[needs[k].wanted] += copy_overlap(bufs[k].data(), needs[k].piece->box, w.data, w.box);
    }
  }
  for (size_t i = 0; i < wanted.size(); ++i)
    if (covered[i] != wanted[i].box.numel())
      throw DataError("checkpoint " + dir + ": the pieces of " + wanted[i].name + " cover " +
                      std::to_string(covered[i]) + " of the " + std::to_string(wanted[i].box.numel()) +
                      " elements this rank needs; manifest.json's layout.tensor_slices is damaged");
  if (!have_meta) meta = index.manifest().value("meta", nlohmann::json::object());
  return meta;
}

}  // namespace moe
