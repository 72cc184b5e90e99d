// `moe train` and `moe eval`.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "src/cli/commands/commands.h"
#include "src/comm/communicator.h"
#include "src/core/error.h"
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/evaluate.h"
#include "src/train/model_state.h"
#include "src/train/threads.h"
#include "src/train/trainer.h"

namespace moe::cli {

namespace {

struct TrainArgs {
  std::string config, run_dir;
  std::vector<std::string> sets;
  bool quiet = false;
  int64_t exit_after = 0;
};

struct EvalArgs {
  std::string config, from;
  std::vector<std::string> sets;
  int64_t batches = 0;
  bool json = false;
};

}  // namespace

// Runs `body` with MPI up. On several ranks an error on one rank must not leave the others
// waiting in a collective: it aborts the whole job with the error's exit code.
int with_runtime(const std::function<int(comm::Communicator&)>& body) {
  comm::Runtime rt(nullptr, nullptr);
  auto world = rt.world();
  try {
    return body(*world);
  } catch (const Error& e) {
    if (world->size() == 1) throw;
    comm::abort_job("error on rank " + std::to_string(world->rank()) + ": " + e.what(), e.exit_code());
  } catch (const std::exception& e) {
    if (world->size() == 1) throw;
    comm::abort_job("error on rank " + std::to_string(world->rank()) + ": " + e.what(), kExitOther);
  }
}

namespace {

int run_train(const TrainArgs& a) {
  Config c = load_config(a.config, a.sets);
  return with_runtime([&](comm::Communicator& world) {
    TrainOptions opt;
    opt.run_dir = a.run_dir.empty() ? (std::filesystem::path("runs") / std::filesystem::path(a.config).stem()).string()
                                    : a.run_dir;
    opt.quiet = a.quiet;
    opt.exit_after = a.exit_after;
    TrainResult r = train(c, opt, world);
    if (world.rank() == 0 && !a.quiet)
      std::printf("done: %lld steps, final loss %.4f, run directory %s\n", (long long)r.steps_done, r.last_loss,
                  opt.run_dir.c_str());
    return kExitOk;
  });
}

int run_eval(const EvalArgs& a) {
  Config c = load_config(a.config, a.sets);
  return with_runtime([&](comm::Communicator& world) {
    validate_layout(c, world.size());
    configure_threads(world);
    ModelState model(c);
    load_weights(a.from, model);  // a checkpoint of any layout, or an exported file
    EvalResult r = evaluate(c, model.p, a.batches, world);
    if (world.rank() == 0) {
      if (a.json)
        std::printf("{\"loss\": %.9g, \"ppl\": %.9g, \"tokens\": %lld}\n", r.loss, r.ppl, (long long)r.tokens);
      else
        std::printf("valid loss %.4f | ppl %.3f | %lld tokens\n", r.loss, r.ppl, (long long)r.tokens);
    }
    return kExitOk;
  });
}

}  // namespace

void add_train_commands(CLI::App& app, int& exit_code) {
  auto targs = std::make_shared<TrainArgs>();
  CLI::App* train = app.add_subcommand("train", "Train a model from a YAML config (under mpirun for several ranks)");
  train->add_option("--config", targs->config, "YAML config file")->required();
  train->add_option("--set", targs->sets, "Override a config key: key.path=value (repeatable)");
  train->add_option("--run-dir", targs->run_dir, "Run directory (default runs/<config name>)");
  train->add_flag("--quiet", targs->quiet, "No progress line");
  train->add_option("--exit-after", targs->exit_after,
                    "Stop after N steps of this run, writing a checkpoint (resume later with checkpoint.resume=auto)");
  train->callback([targs, &exit_code] { exit_code = run_train(*targs); });

  auto eargs = std::make_shared<EvalArgs>();
  CLI::App* eval = app.add_subcommand("eval", "Validation loss and perplexity of a checkpoint");
  eval->add_option("--config", eargs->config, "YAML config file")->required();
  eval->add_option("--from", eargs->from, "Checkpoint folder, run directory, checkpoints root or exported file")
      ->required();
  eval->add_option("--set", eargs->sets, "Override a config key: key.path=value (repeatable)");
  eval->add_option("--batches", eargs->batches, "Evaluate the first N batches (default: all)");
  eval->add_flag("--json", eargs->json, "Print one JSON object: loss, ppl, tokens");
  eval->callback([eargs, &exit_code] { exit_code = run_eval(*eargs); });
}

}  // namespace moe::cli
