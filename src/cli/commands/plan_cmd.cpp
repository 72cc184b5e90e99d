// `moe plan`: memory per rank and step time of every valid parallel layout (docs/planning.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "src/cli/commands/commands.h"
#include "src/core/error.h"
#include "src/plan/planner.h"
#include "src/plan/report.h"

namespace moe::cli {

namespace {

struct PlanArgs {
  std::string config, hardware = "configs/hardware/h100_node.yaml", profile;
  std::vector<std::string> sets;
  int64_t world = 0, top = 10, threads = 0;
  double imbalance = 0, background_load = -1;
  bool json = false;
};

int run_plan(const PlanArgs& a) {
  plan::PlanInputs in;
  in.config = load_config(a.config, a.sets);
  in.hardware = plan::load_hardware(a.hardware);
  in.imbalance = a.imbalance > 0 ? a.imbalance : 1.0;
  in.threads = a.threads;
  if (a.background_load >= 0) {
    if (in.hardware.cores <= 0)
      throw ConfigError("--background-load: " + a.hardware + " has no `cores` key (not a CPU profile); drop the flag");
    in.hardware.background_load = a.background_load;
  }
  if (!a.profile.empty()) in.imbalance = plan::imbalance_from_run(a.profile);
  const auto& p = in.config.parallel;
  const int64_t world = a.world > 0 ? a.world : p.dp * p.tp * p.pp;
  const plan::PlanResult r = plan::make_plan(in, world);
  if (r.considered == 0)
    throw ConfigError("--world " + std::to_string(world) + ": no layout of " + a.config +
                      " is valid on that many ranks (train.batch_size must divide by dp, model.n_layers by pp, "
                      "heads by tp); choose another --world or --set train.batch_size");
  if (a.json)
    std::printf("%s\n", plan::plan_json(in, r, a.top).dump(2).c_str());
  else
    std::printf("%s", plan::plan_table(in, r, a.top).c_str());
  return kExitOk;
}

}  // namespace

void add_plan_commands(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Memory per rank and step time of every parallel layout on N ranks");
  cmd->add_option("--config", args->config, "YAML config file (model, batch, precision)")->required();
  cmd->add_option("--set", args->sets, "Override a config key: key.path=value (repeatable)");
  cmd->add_option("--world", args->world, "Number of ranks (default: the config's dp * tp * pp)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--hardware", args->hardware, "Hardware profile (configs/hardware/*.yaml)")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads,
                  "CPU profiles: threads per rank, as MOE_THREADS (default: the profile's cores / ranks)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--background-load", args->background_load,
                  "CPU profiles: other processes' runnable threads (default: the profile's, from calibration)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_flag("--json", args->json, "Print the plan as one JSON object");
  cmd->add_option("--top", args->top, "How many layouts to list (fitting, and not fitting)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  auto* imb = cmd->add_option("--imbalance", args->imbalance, "Expert load max/mean (default 1: even)")
                  ->check(CLI::Range(1.0, 1e6));
  cmd->add_option("--profile", args->profile, "Run directory: take max/mean expert load from its metrics.jsonl")
      ->excludes(imb);
  cmd->callback([args, &exit_code] { exit_code = run_plan(*args); });
}

}  // namespace moe::cli
