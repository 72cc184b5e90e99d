// Wall time of a training step's phases (docs/profile-format.md: phase_seconds), from scopes
// around the work with steady_clock. Time is exclusive: a scope opened inside another (a
// communication wait inside dispatch) pauses the outer one, so the phases never add up to more
// than the step. Code deep in the model (moe/, src/parallel/) times itself through the calling
// thread's active timer, so no signature carries it; with none active a scope costs one
// thread-local read. No allocation, except trace spans while tracing is on.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include "src/core/error.h"

namespace moe {

// In the column order of phase_seconds (src/train/profile_schema.h); `step` is the trainer's.
enum class Phase : int { attention, route, dispatch, experts, combine, optimizer, comm_wait, count };
inline constexpr int kNumPhases = int(Phase::count);

// An inclusive span of one scope, for the Chrome trace (src/train/profile_trace.h).
struct PhaseSpan {
  Phase phase;
  std::chrono::steady_clock::time_point begin, end;
};

class PhaseTimer {
 public:
  using Clock = std::chrono::steady_clock;

  // Zeroes the sums and drops the spans (each step starts here).
  void reset() {
    MOE_CHECK(depth_ == 0, "phase timer reset inside a scope");
    seconds_.fill(0.0);
    spans_.clear();
  }
  double seconds(Phase p) const { return seconds_[size_t(p)]; }
  // Spans of the scopes closed since reset(), when tracing.
  void set_tracing(bool on) { tracing_ = on; }
  bool tracing() const { return tracing_; }
  const std::vector<PhaseSpan>& spans() const { return spans_; }

  void enter(Phase p) {
    MOE_CHECK(depth_ < kMaxDepth, "phase scopes nested too deep");
    const Clock::time_point now = Clock::now();
    if (depth_ > 0) seconds_[size_t(stack_[depth_ - 1])] += std::chrono::duration<double>(now - last_).count();
    stack_[depth_] = p;
    begin_[depth_] = now;
    ++depth_;
    last_ = now;
  }
  void leave() {
    const Clock::time_point now = Clock::now();
    --depth_;
    seconds_[size_t(stack_[depth_])] += std::chrono::duration<double>(now - last_).count();
    if (tracing_) spans_.push_back({stack_[depth_], begin_[depth_], now});
    last_ = now;
  }

 private:
  static constexpr int kMaxDepth = 8;
  std::array<double, kNumPhases> seconds_{};
  std::array<Phase, kMaxDepth> stack_{};
  std::array<Clock::time_point, kMaxDepth> begin_{};
  int depth_ = 0;
  Clock::time_point last_{};
  bool tracing_ = false;
  std::vector<PhaseSpan> spans_;
};

namespace detail {
inline thread_local PhaseTimer* active_phase_timer = nullptr;
}

inline PhaseTimer* active_phase_timer() { return detail::active_phase_timer; }

// Makes `t` the calling thread's active timer for its lifetime (null: none), then restores.
class ActivePhaseTimer {
 public:
  explicit ActivePhaseTimer(PhaseTimer* t) : prev_(detail::active_phase_timer) { detail::active_phase_timer = t; }
  ~ActivePhaseTimer() { detail::active_phase_timer = prev_; }
  ActivePhaseTimer(const ActivePhaseTimer&) = delete;
  ActivePhaseTimer& operator=(const ActivePhaseTimer&) = delete;

 private:
  PhaseTimer* prev_;
};

// Times its lifetime as phase `p` on the active timer, if any.
class PhaseScope {
 public:
  explicit PhaseScope(Phase p) : t_(detail::active_phase_timer) {
    if (t_) t_->enter(p);
  }
  ~PhaseScope() {
    if (t_) t_->leave();
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseTimer* t_;
};

}  // namespace moe
