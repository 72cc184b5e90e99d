// The `moe` executable: subcommands register themselves (src/cli/commands); errors become the exit
// codes of DESIGN.md (0 ok, 2 usage/config, 3 data/checkpoint, 1 anything else).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "src/cli/commands/commands.h"
#include "src/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"moe: train mixture-of-experts language models across processes"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moe 0.1");
  int exit_code = moe::kExitOk;
  moe::cli::add_data_commands(app, exit_code);
  moe::cli::add_train_commands(app, exit_code);
  moe::cli::add_profile_commands(app, exit_code);
  moe::cli::add_plan_commands(app, exit_code);
  moe::cli::add_finetune_commands(app, exit_code);
  moe::cli::add_export_commands(app, exit_code);
  moe::cli::add_generate_commands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : moe::kExitUsage;
  } catch (const moe::Error& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return moe::kExitOther;
  }
  return exit_code;
}
