// Each subcommand module adds itself to the `moe` app. A callback stores its exit code in
// `exit_code`; errors are thrown as moe::Error and turned into exit codes by main().
#pragma once
namespace CLI {
class App;
}

namespace moe::cli {

void add_data_commands(CLI::App& app, int& exit_code);     // data prepare, data inspect
void add_train_commands(CLI::App& app, int& exit_code);    // train, eval
void add_profile_commands(CLI::App& app, int& exit_code);  // profile
void add_plan_commands(CLI::App& app, int& exit_code);     // plan

}  // namespace moe::cli
