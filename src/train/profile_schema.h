// Names and version of RUN_DIR/load_balance.h5 (docs/profile-format.md), shared by the recorder
// (src/train/load_balance_recorder.cpp) and the reader behind `moe profile`.
#pragma once
#include <array>
#include <cstdint>

namespace moe::profile {

inline constexpr int64_t kFormatVersion = 1;
inline constexpr const char* kFileName = "load_balance.h5";
inline constexpr const char* kMetricsFileName = "metrics.jsonl";

// Columns of phase_seconds, in PhaseTimes order; also stored as its "phases" attribute.
inline constexpr std::array<const char*, 8> kPhaseNames = {"attention", "route",   "dispatch",  "experts",
                                                           "combine",   "optimizer", "comm_wait", "step"};

}  // namespace moe::profile
