// `moe export`: a checkpoint of any layout (or an exported file) -> one file of full logical
// tensors, safetensors or HDF5 (docs/export.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "src/cli/commands/commands.h"
#include "src/core/error.h"
#include "src/train/export.h"

namespace moe::cli {

namespace {

struct ExportArgs {
  std::string from, format, out;
};

}  // namespace

void add_export_commands(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* ex = app.add_subcommand("export", "Write a checkpoint's full weights as safetensors or HDF5");
  ex->add_option("--from", args->from, "Checkpoint folder, run directory, checkpoints root or exported file")
      ->required();
  ex->add_option("--format", args->format, "safetensors or hdf5")
      ->required()
      ->check(CLI::IsMember({"safetensors", "hdf5"}));
  ex->add_option("--out", args->out, "File to write (replaced if it exists)")->required();
  ex->callback([args, &exit_code] {
    const ExportFormat f = args->format == "safetensors" ? ExportFormat::safetensors : ExportFormat::hdf5;
    export_model(args->from, f, args->out);
    std::printf("exported %s to %s (%s)\n", args->from.c_str(), args->out.c_str(), args->format.c_str());
    exit_code = kExitOk;
  });
}

}  // namespace moe::cli
