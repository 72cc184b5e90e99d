// `moe profile RUN_DIR [--json] [--html FILE] [--compare RUN_B]`: routing balance and loss of a run, from
// RUN_DIR/load_balance.h5 and RUN_DIR/metrics.jsonl (docs/profile-format.md).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "src/cli/commands/commands.h"
#include "src/cli/commands/profile_report.h"
#include "src/core/error.h"
#include "src/train/profile_summary.h"

namespace moe::cli {

namespace {

struct ProfileArgs {
  std::string run_dir, html, compare;
  bool json = false;
};

int run_compare(const ProfileArgs& a) {
  if (!a.html.empty())
    throw ConfigError("--html: not available with --compare; run `moe profile RUN --html FILE` for each run");
  const profile::RunProfile ra = profile::load_run_profile(a.run_dir);
  const profile::RunProfile rb = profile::load_run_profile(a.compare);
  if (a.json)
    std::printf("%s\n", profile_compare_json(ra, rb).dump(2).c_str());
  else
    std::fputs(profile_compare_text(ra, rb).c_str(), stdout);
  return kExitOk;
}

int run_profile(const ProfileArgs& a) {
  if (!a.compare.empty()) return run_compare(a);
  const profile::RunProfile rp = profile::load_run_profile(a.run_dir);
  if (!a.html.empty()) {
    std::ofstream out(a.html, std::ios::binary | std::ios::trunc);
    out << profile_html(rp);
    out.close();
    if (!out) throw DataError(a.html + ": cannot write the HTML report (check the folder exists and is writable)");
  }
  if (a.json)
    std::printf("%s\n", profile_json(rp).dump(2).c_str());
  else
    std::fputs(profile_text(rp).c_str(), stdout);
  if (!a.html.empty() && !a.json) std::printf("wrote %s\n", a.html.c_str());
  return kExitOk;
}

}  // namespace

void add_profile_commands(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ProfileArgs>();
  CLI::App* cmd = app.add_subcommand("profile", "Expert load balance, drops, phase times and loss of a training run");
  cmd->add_option("RUN_DIR", args->run_dir, "Run directory of `moe train` (holds metrics.jsonl, load_balance.h5)")
      ->required();
  cmd->add_flag("--json", args->json, "Print the figures as one JSON object instead of the text report");
  cmd->add_option("--html", args->html, "Also write a self-contained HTML report (inline SVG) to FILE");
  cmd->add_option("--compare", args->compare, "A second run directory: print both runs side by side")
      ->option_text("RUN_B");
  cmd->callback([args, &exit_code] { exit_code = run_profile(*args); });
}

}  // namespace moe::cli
