// Start-up and run-time safety nets of a multi-rank job (docs/distributed.md, "No silent hang").
#pragma once
#include <cstdint>
#include <string>

#include "src/comm/communicator.h"

namespace moe {

// Every rank must resolve the same config (a --set on one rank only would otherwise diverge or
// hang later). Compares a hash of `resolved` (the dumped config) across `world`; on a mismatch
// every rank throws the same ConfigError naming the first differing rank and the first
// differing line. Collective.
void check_same_config(const std::string& resolved, const std::string& source, comm::Communicator& world);

// Test-only hook for the watchdog: with MOE_TEST_STALL_RANK=r and MOE_TEST_STALL_STEP=s in the
// environment, world rank r sleeps for MOE_TEST_STALL_SECONDS (default 600) before step s, so the
// other ranks' next collective times out; with MOE_TEST_STALL_MODE=freeze it stops itself with
// SIGSTOP instead (a frozen process: not even its watchdog answers). No effect when unset.
void stall_for_test(int world_rank, int64_t step);

// FNV-1a 64-bit hash of a string (stable across processes and builds).
uint64_t fnv1a(const std::string& s);

}  // namespace moe
