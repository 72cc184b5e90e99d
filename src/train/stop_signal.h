// SIGTERM / SIGINT (Slurm preemption, Ctrl-C): the handler only sets a flag; the trainer finishes
// the current step, agrees with every rank that someone was signalled, writes a checkpoint and
// exits 0. A second signal while stopping restores the default action (immediate exit).
#pragma once

namespace moe {

void install_stop_handlers();
bool stop_requested();

}  // namespace moe
