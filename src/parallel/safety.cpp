#include "src/parallel/safety.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "src/core/error.h"

namespace moe {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream x(a), y(b);
  std::string la, lb;
  while (true) {
    const bool ga = bool(std::getline(x, la)), gb = bool(std::getline(y, lb));
    if (!ga && !gb) return "";
    if (!ga || !gb || la != lb) return "'" + (ga ? la : std::string("<end>")) + "' vs '" + (gb ? lb : "<end>") + "'";
  }
}

}  // namespace

void check_same_config(const std::string& resolved, const std::string& source, comm::Communicator& world) {
  if (world.size() == 1) return;
  const std::vector<std::string> hashes = world.allgather_string(std::to_string(fnv1a(resolved)));
  int differing = -1;
  for (int r = 1; r < world.size() && differing < 0; ++r)
    if (hashes[size_t(r)] != hashes[0]) differing = r;
  if (differing < 0) return;
  // Only on a mismatch: the whole configs, to name the first line that differs.
  const std::vector<std::string> all = world.allgather_string(resolved);
  throw ConfigError("the resolved config of rank " + std::to_string(differing) + " differs from rank 0's (" + source +
                    "): rank 0 vs rank " + std::to_string(differing) + ": " +
                    first_difference(all[0], all[size_t(differing)]) +
                    "; pass the same --config and --set options to every rank");
}

void stall_for_test(int world_rank, int64_t step) {
  const char* rank = std::getenv("MOE_TEST_STALL_RANK");
  const char* at = std::getenv("MOE_TEST_STALL_STEP");
  if (!rank || !at || std::atoi(rank) != world_rank || std::atoll(at) != step) return;
  if (const char* mode = std::getenv("MOE_TEST_STALL_MODE"); mode && std::string(mode) == "freeze") {
    // The whole process stops, watchdog thread included: it cannot answer the peer survey.
    std::fprintf(stderr, "moe: rank %d freezes (SIGSTOP) before step %lld (MOE_TEST_STALL_RANK)\n", world_rank,
                 (long long)step);
    std::fflush(stderr);
    std::raise(SIGSTOP);
    return;
  }
  const char* secs = std::getenv("MOE_TEST_STALL_SECONDS");
  const double s = secs ? std::atof(secs) : 600.0;
  std::fprintf(stderr, "moe: rank %d stalls %.0f s before step %lld (MOE_TEST_STALL_RANK)\n", world_rank, s,
               (long long)step);
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

}  // namespace moe
