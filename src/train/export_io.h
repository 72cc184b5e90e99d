// Internal to the export module: the readers of the two formats behind ExportedFile::open.
#pragma once
#include <memory>
#include <string>

#include "src/train/export.h"

namespace moe {

std::unique_ptr<ExportedFile> open_safetensors(const std::string& path);
std::unique_ptr<ExportedFile> open_export_h5(const std::string& path);

}  // namespace moe
