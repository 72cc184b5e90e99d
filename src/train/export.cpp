#include "src/train/export.h"

#include <filesystem>

#include "src/core/error.h"
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/export_io.h"
#include "src/train/reshard.h"

namespace moe {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool is_exported_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  return ends_with(path, ".safetensors") || ends_with(path, ".h5") || ends_with(path, ".hdf5");
}

std::unique_ptr<ExportedFile> ExportedFile::open(const std::string& path) {
  if (ends_with(path, ".safetensors")) return open_safetensors(path);
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return open_export_h5(path);
  throw DataError(path + ": not an exported model; expected a .safetensors or .h5 file written by moe export");
}

std::vector<ExportTensor> model_tensors(const ModelState& model) {
  std::vector<ExportTensor> out;
  for (const auto& p : model.table.params()) {
    MOE_CHECK(!p.shard.split(), "export needs the full model, " + p.name + " is a shard");
    out.push_back({p.name, p.shape, model.params.data() + p.offset});
  }
  return out;
}

void import_weights(const std::string& path, ModelState& model) {
  std::unique_ptr<ExportedFile> f = ExportedFile::open(path);
  std::vector<float> whole;
  for (const auto& p : model.table.params()) {
    const std::vector<int64_t> stored = f->shape(p.name);
    if (stored != p.shard.global_shape)
      throw DataError("tensor " + p.name + " in " + path + " has shape " + shape_text(stored) + " but this model's is " +
                      shape_text(p.shard.global_shape) +
                      ": model.* and moe.* (e.g. moe.num_experts) must match the exported model's config");
    const Box all{std::vector<int64_t>(stored.size(), 0), stored};
    whole.resize(size_t(all.numel()));
    f->read(p.name, whole.data());
    copy_overlap(whole.data(), all, model.params.data() + p.offset, shard_box(p));
  }
}

Config stored_config(const std::string& source, const std::vector<std::string>& overrides) {
  if (is_exported_file(source)) return parse_config(ExportedFile::open(source)->config_text(), source, overrides);
  const std::string dir = ckpt::resolve(source);
  const nlohmann::json manifest = ckpt::read_manifest(dir);
  const nlohmann::json meta = manifest.value("meta", nlohmann::json::object());
  if (!meta.contains("config") || !meta["config"].is_string())
    throw DataError("checkpoint " + dir + "/manifest.json has no meta.config; it was not written by moe train");
  return parse_config(meta["config"].get<std::string>(), dir + "/manifest.json (meta.config)", overrides);
}

void export_model(const std::string& source, ExportFormat format, const std::string& out) {
  Config c = stored_config(source, {});
  ModelState model(c);  // the full model: every expert
  load_weights(source, model);
  const std::string config_text = dump_config(c);
  if (format == ExportFormat::safetensors)
    write_safetensors(out, model_tensors(model), config_text);
  else
    write_export_h5(out, model_tensors(model), config_text);
}

}  // namespace moe
