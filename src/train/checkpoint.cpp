// Checkpoint save (collective, crash-safe), discovery and load. Protocol: docs/checkpoint-format.md.
#include "src/train/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "src/core/error.h"
#include "src/train/checkpoint_io.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace moe::ckpt {

namespace {

const char* const kManifest = "manifest.json";
const char* const kFormatName = "moe-checkpoint";

// Runs f; returns its error message ("" on success) so that every rank can learn of a failure
// through the gather instead of leaving the others blocked in a collective.
template <class F>
std::string capture(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

void remove_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

// Deletes a folder by renaming it to a temp name first, so a crash mid-delete never leaves a
// half-deleted folder that still looks like a checkpoint.
void delete_folder(const fs::path& dir) {
  const fs::path doomed = dir.parent_path() / (dir.filename().string() + ".tmp-del");
  remove_quietly(doomed);
  std::error_code ec;
  fs::rename(dir, doomed, ec);
  remove_quietly(ec ? dir : doomed);  // a failure here is retried by the next save's cleanup
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t step = -1;
    if (detail::parse_step_dir_name(it->path().filename().string(), &step) && detail::is_complete(it->path().string()))
      out.emplace_back(step, it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Rank 0, before anyone writes: remove leftovers of crashed saves (temp folders, folders without a
// complete manifest), then create this save's temp folder.
void prepare(const fs::path& root, const fs::path& tmp_dir) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec || !fs::is_directory(root))
    throw DataError("cannot create checkpoint folder " + root.string() + " (" + (ec ? ec.message() : "not a folder") +
                    "); set checkpoint.dir to a writable folder");
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int64_t step = -1;
    if (detail::is_temp_dir_name(name) ||
        (detail::parse_step_dir_name(name, &step) && !detail::is_complete(it->path().string())))
      stale.push_back(it->path());
  }
  if (ec) throw DataError("cannot list checkpoint folder " + root.string() + " (" + ec.message() + ")");
  for (const fs::path& p : stale) remove_quietly(p);
  if (!fs::create_directory(tmp_dir, ec) || ec)
    throw DataError("cannot create " + tmp_dir.string() + " (" + (ec ? ec.message() : "already exists") +
                    "); is the checkpoint folder writable?");
}

// Every rank: write, fsync and checksum this rank's file; the report travels to rank 0.
json write_own_file(const SaveRequest& req, const fs::path& tmp_dir) {
  std::error_code ec;
  fs::create_directories(tmp_dir, ec);  // no-op on rank 0; makes the folder visible on shared filesystems
  if (ec) throw DataError("cannot create " + tmp_dir.string() + " (" + ec.message() + ")");
  const std::string name = detail::rank_file_name(req.rank);
  const std::string path = (tmp_dir / name).string();
  detail::write_rank_file(path, req.tensors);
  json tensors = json::array();
  for (const TensorRef& t : req.tensors) tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", "float32"}});
  return {{"rank", req.rank},
          {"file", name},
          {"bytes", static_cast<int64_t>(fs::file_size(path))},
          {"checksum", detail::checksum_hex(file_checksum(path))},
          {"tensors", std::move(tensors)}};
}

// Rank 0, after every rank's file is complete: manifest, then the renames that publish it.
void commit(const SaveRequest& req, const std::vector<json>& reports, const fs::path& tmp_dir, const fs::path& final_dir) {
  for (size_t r = 0; r < reports.size(); ++r)
    MOE_CHECK(reports[r].at("rank").get<size_t>() == r, "gather_strings must return the strings in rank order");
  json manifest = {{"format", kFormatName},
                   {"format_version", kFormatVersion},
                   {"step", req.step},
                   {"world", req.world},
                   {"layout", req.layout},
                   {"meta", req.meta},
                   {"checksum", "crc32"},
                   {"ranks", reports}};
  detail::write_text_durably((tmp_dir / kManifest).string(), manifest.dump(2) + "\n");
  detail::fsync_path(tmp_dir.string());
  if (!fs::exists(final_dir)) {
    detail::durable_rename(tmp_dir.string(), final_dir.string());
    return;
  }
  // Same step saved again: move the old one away, move the new one in, then delete the old one.
  const fs::path old = final_dir.parent_path() / (final_dir.filename().string() + ".tmp-old");
  remove_quietly(old);
  detail::durable_rename(final_dir.string(), old.string());
  try {
    detail::durable_rename(tmp_dir.string(), final_dir.string());
  } catch (const DataError&) {
    std::error_code ec;
    fs::rename(old, final_dir, ec);
    throw;
  }
  remove_quietly(old);
}

void prune(const fs::path& root, int64_t keep, int64_t just_saved) {
  if (keep <= 0) return;
  auto all = complete_checkpoints(root);
  int64_t excess = static_cast<int64_t>(all.size()) - keep;
  for (const auto& [step, dir] : all) {
    if (excess <= 0) break;
    if (step == just_saved) continue;  // the newest by save order survives even if older steps exist
    delete_folder(dir);
    --excess;
  }
}

std::string base_name(const fs::path& p) {
  fs::path n = p.lexically_normal();
  if (n.filename().empty()) n = n.parent_path();
  return n.filename().string();
}

std::string join_errors(const std::vector<json>& reports) {
  std::string out;
  for (const json& r : reports)
    if (r.contains("error")) out += (out.empty() ? "" : "; ") + r["error"].get<std::string>();
  return out;
}

}  // namespace

std::string save(const SaveRequest& req, const std::function<void()>& barrier,
                 const std::function<std::vector<std::string>(const std::string&)>& gather_strings) {
  MOE_CHECK(req.world >= 1 && req.rank >= 0 && req.rank < req.world, "bad rank/world in checkpoint save");
  MOE_CHECK(req.world == 1 || (barrier && gather_strings), "a multi-rank checkpoint save needs barrier and gather");
  MOE_CHECK(!req.root.empty(), "empty checkpoint root");
  const std::string name = step_dir_name(req.step);
  const fs::path root(req.root);
  const fs::path final_dir = root / name;
  const fs::path tmp_dir = root / (name + ".tmp-save");
  const bool lead = req.rank == 0;
  const auto gather = [&](const std::string& s) {
    std::vector<std::string> all = req.world > 1 ? gather_strings(s) : std::vector<std::string>{s};
    MOE_CHECK(static_cast<int>(all.size()) == req.world, "gather_strings must return one string per rank");
    return all;
  };

  std::string err = lead ? capture([&] { prepare(root, tmp_dir); }) : "";
  if (req.world > 1) barrier();
  json report;
  if (err.empty()) err = capture([&] { report = write_own_file(req, tmp_dir); });
  if (!err.empty()) report = {{"rank", req.rank}, {"error", "rank " + std::to_string(req.rank) + ": " + err}};

  std::vector<json> reports;
  for (const std::string& s : gather(report.dump())) reports.push_back(json::parse(s));
  std::string status;
  if (lead) {
    status = join_errors(reports);
    if (status.empty()) status = capture([&] { commit(req, reports, tmp_dir, final_dir); });
    if (!status.empty()) remove_quietly(tmp_dir);
  }
  status = gather(status)[0];
  if (!status.empty())
    throw DataError("checkpoint save of step " + std::to_string(req.step) + " under " + root.string() +
                    " failed: " + status + " (the previous checkpoints are untouched)");
  if (lead) prune(root, req.keep, req.step);
  return final_dir.string();
}

std::optional<std::string> latest(const std::string& root) {
  auto all = complete_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

std::string resolve(const std::string& path) {
  const fs::path p(path);
  const std::string hint =
      "; pass a checkpoint folder (RUN_DIR/checkpoints/step_NNNNNNNN), a run directory or a checkpoints folder";
  std::error_code ec;
  if (!fs::exists(p, ec)) throw DataError("checkpoint path " + path + " does not exist" + hint);
  if (!fs::is_directory(p, ec)) throw DataError("checkpoint path " + path + " is not a folder" + hint);
  if (fs::exists(p / kManifest, ec)) {
    if (detail::is_temp_dir_name(base_name(p)))
      throw DataError("checkpoint path " + path + " is an unfinished save (temp folder), not a checkpoint" + hint);
    const json m = read_manifest(path);
    for (const json& r : m["ranks"]) {
      const fs::path f = p / r["file"].get<std::string>();
      if (!fs::is_regular_file(f, ec)) throw DataError("checkpoint " + path + " is incomplete: " + f.string() + " is missing");
    }
    return path;
  }
  for (const fs::path& root : {p / "checkpoints", p})
    if (auto found = latest(root.string())) return *found;
  throw DataError("no complete checkpoint under " + path +
                  " (looked for step_NNNNNNNN/manifest.json in it and in its checkpoints/ folder)" + hint);
}

json read_manifest(const std::string& ckpt_dir) {
  const fs::path file = fs::path(ckpt_dir) / kManifest;
  std::ifstream in(file);
  if (!in) throw DataError("checkpoint " + ckpt_dir + " has no readable " + kManifest + " (incomplete save or not a checkpoint folder)");
  json m;
  try {
    m = json::parse(in);
    if (m.at("format").get<std::string>() != kFormatName) throw DataError(file.string() + " is not a moe checkpoint manifest");
    const int version = m.at("format_version").get<int>();
    if (version != kFormatVersion)
      throw DataError(file.string() + " has format_version " + std::to_string(version) + "; this build reads version " +
                      std::to_string(kFormatVersion) + " (use a matching moe build)");
    const int64_t world = m.at("world").get<int64_t>();
    if (m.at("step").get<int64_t>() < 0 || world < 1 || static_cast<int64_t>(m.at("ranks").size()) != world)
      throw DataError(file.string() + " is malformed: step, world or the ranks list is inconsistent");
    for (const json& r : m.at("ranks")) {
      r.at("file").get<std::string>();
      r.at("checksum").get<std::string>();
      r.at("bytes").get<int64_t>();
      for (const json& t : r.at("tensors")) {
        t.at("name").get<std::string>();
        t.at("shape").get<std::vector<int64_t>>();
        t.at("dtype").get<std::string>();
      }
    }
    m.at("layout");
    m.at("meta");
  } catch (const json::exception& e) {
    throw DataError(file.string() + " is malformed (" + e.what() + "); the checkpoint cannot be used");
  }
  return m;
}

Loaded load(const std::string& ckpt_dir, int rank, int world, std::vector<TensorRef>& tensors) {
  MOE_CHECK(world >= 1 && rank >= 0 && rank < world, "bad rank/world in checkpoint load");
  const json m = read_manifest(ckpt_dir);
  const int64_t saved_world = m["world"].get<int64_t>();
  if (saved_world != world)
    throw DataError("checkpoint " + ckpt_dir + " was written by " + std::to_string(saved_world) + " ranks, this run has " +
                    std::to_string(world) + "; resume with the same parallel layout (" + m["layout"].dump() + ")");
  const json& entry = m["ranks"][static_cast<size_t>(rank)];
  const std::string path = (fs::path(ckpt_dir) / entry["file"].get<std::string>()).string();
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  if (ec) throw DataError("checkpoint file " + path + " is missing or unreadable (" + ec.message() + ")");
  if (static_cast<int64_t>(bytes) != entry["bytes"].get<int64_t>())
    throw DataError("checkpoint file " + path + " has " + std::to_string(bytes) + " bytes, the manifest says " +
                    entry["bytes"].dump() + ": the file is truncated or damaged");
  const std::string sum = detail::checksum_hex(file_checksum(path));
  if (sum != entry["checksum"].get<std::string>())
    throw DataError("checkpoint file " + path + " is damaged: checksum " + sum + ", the manifest says " +
                    entry["checksum"].get<std::string>());
  for (const TensorRef& t : tensors) {
    const auto& listed = entry["tensors"];
    auto it = std::find_if(listed.begin(), listed.end(), [&](const json& x) { return x["name"] == t.name; });
    if (it == listed.end())
      throw DataError("checkpoint file " + path + " has no tensor '" + t.name + "' (model or layout differs from the saved run?)");
    if ((*it)["dtype"] != "float32")
      throw DataError("checkpoint file " + path + ": tensor '" + t.name + "' has dtype " + (*it)["dtype"].dump() + ", expected float32");
    if ((*it)["shape"].get<std::vector<int64_t>>() != t.shape)
      throw DataError("checkpoint file " + path + ": tensor '" + t.name + "' has shape " + (*it)["shape"].dump() +
                      ", expected " + json(t.shape).dump() + " (model or layout differs from the saved run?)");
  }
  detail::read_rank_file(path, tensors);
  return {m["step"].get<int64_t>(), m["layout"], m["meta"]};
}

}  // namespace moe::ckpt
