#include "src/train/threads.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <unistd.h>
#include <vector>

namespace moe {

void set_threads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int configure_threads(comm::Communicator& world) {
  int n = 0;
  if (const char* env = std::getenv("MOE_THREADS")) n = std::atoi(env);
  if (n <= 0) {
    // Ranks on this node: all-gather the host names and count matches.
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    std::vector<std::string> hosts = world.allgather_string(host);
    int local = int(std::count(hosts.begin(), hosts.end(), std::string(host)));
    n = std::max(1, int(std::thread::hardware_concurrency()) / std::max(1, local));
  }
  set_threads(n);
  return n;
}

}  // namespace moe
