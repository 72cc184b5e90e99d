// `moe finetune`: train from a checkpoint's (or exported file's) weights with the config's own
// data, schedule, routing settings and finetune.freeze list (docs/finetune.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "src/cli/commands/commands.h"
#include "src/comm/communicator.h"
#include "src/core/error.h"
#include "src/train/trainer.h"

namespace moe::cli {

namespace {

struct FinetuneArgs {
  std::string config, from, run_dir;
  std::vector<std::string> sets;
  bool keep_optimizer = false, quiet = false;
  int64_t exit_after = 0;
};

int run_finetune(const FinetuneArgs& a) {
  Config c = load_config(a.config, a.sets);
  return with_runtime([&](comm::Communicator& world) {
    TrainOptions opt;
    opt.run_dir = a.run_dir.empty() ? (std::filesystem::path("runs") / std::filesystem::path(a.config).stem()).string()
                                    : a.run_dir;
    opt.init_from = a.from;
    opt.keep_optimizer = a.keep_optimizer;
    opt.quiet = a.quiet;
    opt.exit_after = a.exit_after;
    TrainResult r = train(c, opt, world);
    if (world.rank() == 0 && !a.quiet)
      std::printf("done: %lld fine-tuning steps, final loss %.4f, run directory %s\n", (long long)r.steps_done,
                  r.last_loss, opt.run_dir.c_str());
    return kExitOk;
  });
}

}  // namespace

void add_finetune_commands(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<FinetuneArgs>();
  CLI::App* ft = app.add_subcommand("finetune", "Fine-tune a trained model: start from a checkpoint's weights");
  ft->add_option("--config", args->config, "YAML config of the fine-tune (data, schedule, finetune.freeze)")
      ->required();
  ft->add_option("--from", args->from, "Checkpoint folder, run directory, checkpoints root or exported file")
      ->required();
  ft->add_option("--set", args->sets, "Override a config key: key.path=value (repeatable)");
  ft->add_option("--run-dir", args->run_dir, "Run directory (default runs/<config name>)");
  ft->add_flag("--keep-optimizer", args->keep_optimizer,
               "Also take AdamW's moments and step count from the checkpoint (default: fresh optimizer state)");
  ft->add_flag("--quiet", args->quiet, "No progress line");
  ft->add_option("--exit-after", args->exit_after,
                 "Stop after N steps of this run, writing a checkpoint (rerun the same command to continue)");
  ft->callback([args, &exit_code] { exit_code = run_finetune(*args); });
}

}  // namespace moe::cli
