// `moe profile RUN_DIR [--json] [--html FILE]`: routing balance and loss of a run, from
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
  std::string run_dir, html;
  bool json = false;
};

int run_profile(const ProfileArgs& a) {
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
  cmd->callback([args, &exit_code] { exit_code = run_profile(*args); });
}

}  // namespace moe::cli
