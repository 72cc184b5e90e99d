// Exported models: full logical tensors (DESIGN.md names, float32) in one file, safetensors or
// HDF5, with the resolved config stored beside them, so that an exported file can be the --from
// of train, finetune, eval, generate and export. Formats and the Hugging Face Mixtral name
// mapping: docs/export.md.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/train/config.h"
#include "src/train/model_state.h"

namespace moe {

enum class ExportFormat { safetensors, hdf5 };

// ".safetensors" or ".h5"/".hdf5" naming an existing regular file.
bool is_exported_file(const std::string& path);

// Read access to one exported file; DataError naming the file (and tensor) on any defect.
class ExportedFile {
 public:
  virtual ~ExportedFile() = default;
  static std::unique_ptr<ExportedFile> open(const std::string& path);
  virtual const std::string& path() const = 0;
  virtual const std::string& config_text() const = 0;  // the resolved YAML config of the run
  // The tensor's shape; DataError naming file and tensor when absent.
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  virtual void read(const std::string& name, float* out) const = 0;  // numel(shape) floats
};

struct ExportTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
};

// Write the tensors (in the given order) and the config text to `path`, replacing it.
void write_safetensors(const std::string& path, const std::vector<ExportTensor>& tensors,
                       const std::string& config_text);
void write_export_h5(const std::string& path, const std::vector<ExportTensor>& tensors, const std::string& config_text);

// Every parameter of a full (unsharded) model, in table order.
std::vector<ExportTensor> model_tensors(const ModelState& model);

// Fills this rank's shards of every parameter from an exported file (weights only).
void import_weights(const std::string& path, ModelState& model);

// The resolved config stored with a checkpoint (its manifest's meta) or an exported file; SOURCE
// is a checkpoint folder, run directory, checkpoints root or exported file. `overrides` apply on
// top (--set). Messages name SOURCE as the config's file.
Config stored_config(const std::string& source, const std::vector<std::string>& overrides);

// `moe export`: loads SOURCE (any layout) and writes the full model to `out`.
void export_model(const std::string& source, ExportFormat format, const std::string& out);

}  // namespace moe
