// Pieces every training loop shares (the CPU trainer and train.device cuda's).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "data/loader.h"
#include "src/comm/communicator.h"
#include "src/train/config.h"

namespace moe {

// The data loader of a run: this rank's rows of every global batch of the train split.
data::LoaderOptions run_loader_options(const Config& c, const comm::Communicator& dp);

// After a step: whether every rank stops now, agreed collectively over `world` (a signal may reach
// the ranks at different steps), also when --exit-after's count of this run's steps is reached.
// The lead says so when a signal caused it.
bool stop_after_step(comm::Communicator& world, int64_t exit_after, int64_t steps_this_run, int64_t step_done,
                     bool lead);

// Throughput between logged steps and the run's progress line. The interval restarts when the
// caller says (after the logging step's eval and metrics, which do not count as training time).
class RunProgress {
 public:
  using Clock = std::chrono::steady_clock;
  RunProgress(int64_t start_step, int64_t total_steps) : start_step_(start_step), total_(total_steps) {}
  void step_done() { ++interval_steps_; }
  // Tokens per second over the steps since the interval started.
  double tokens_per_s(double tokens_per_step) const;
  void restart_interval();
  // "step s/S | loss | tok/s | mfu | ETA" plus `extra`, on stdout (flushed).
  void print(int64_t step_done, double loss, double tokens_per_s, double mfu, const std::string& extra) const;

 private:
  int64_t start_step_, total_, interval_steps_ = 0;
  Clock::time_point run_start_ = Clock::now(), interval_start_ = run_start_;
};

}  // namespace moe
