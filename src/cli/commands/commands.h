// Each subcommand module adds itself to the `moe` app. A callback stores its exit code in
// `exit_code`; errors are thrown as moe::Error and turned into exit codes by main().
#pragma once
#include <functional>

namespace CLI {
class App;
}
namespace moe::comm {
class Communicator;
}

namespace moe::cli {

void add_data_commands(CLI::App& app, int& exit_code);     // data prepare, data inspect
void add_train_commands(CLI::App& app, int& exit_code);    // train, eval
void add_profile_commands(CLI::App& app, int& exit_code);  // profile
void add_plan_commands(CLI::App& app, int& exit_code);     // plan
void add_finetune_commands(CLI::App& app, int& exit_code); // finetune
void add_export_commands(CLI::App& app, int& exit_code);   // export
void add_generate_commands(CLI::App& app, int& exit_code); // generate

// Runs `body` with MPI up; an error on one of several ranks aborts the job with its exit code.
int with_runtime(const std::function<int(comm::Communicator&)>& body);

}  // namespace moe::cli
