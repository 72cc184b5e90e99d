// Chrome trace of the phase scopes (src/model/phase_timer.h) for the steps of
// profile.trace_steps: one JSON file per rank, FILE.rankN.json, in the trace event format that
// Perfetto and chrome://tracing open ("X" complete events, ts/dur in microseconds, pid = world
// rank, tid 0 = compute, tid 1 = communication). docs/profile-format.md describes it.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "src/model/phase_timer.h"
#include "src/train/config.h"

namespace moe {

class PhaseTrace {
 public:
  using Clock = std::chrono::steady_clock;
  // Off when c.profile.trace is empty. A relative trace path is taken inside run_dir.
  PhaseTrace(const Config& c, const std::string& run_dir, int rank);
  ~PhaseTrace();  // writes the file if the run stopped inside the range (a failure is printed)
  PhaseTrace(const PhaseTrace&) = delete;
  PhaseTrace& operator=(const PhaseTrace&) = delete;

  bool enabled() const { return !path_.empty(); }
  // step = completed steps once this one ends (1-based, as in metrics.jsonl).
  bool wants(int64_t step) const { return enabled() && step >= first_ && step <= last_; }
  // The step's events: the step itself and the spans of its phase scopes. Writes the file after
  // the range's last step; DataError naming the file if it cannot be written.
  void add_step(int64_t step, Clock::time_point begin, Clock::time_point end, const std::vector<PhaseSpan>& spans);
  const std::string& path() const { return path_; }

  // "out/trace.json" -> "out/trace.rank3.json"; a name without ".json" gets ".rank3.json" appended.
  static std::string rank_path(const std::string& base, int rank);

 private:
  void write();
  std::string path_;
  int rank_ = 0;
  int64_t first_ = 0, last_ = 0;
  bool written_ = false;
  std::string events_;  // JSON objects, comma separated
};

}  // namespace moe
