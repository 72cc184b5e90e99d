// One thread pool size for OpenMP and OpenBLAS: the node's cores divided by the ranks on it, so
// oversubscribed multi-rank runs do not thrash. MOE_THREADS overrides.
#pragma once
#include "src/comm/communicator.h"

namespace moe {

int configure_threads(comm::Communicator& world);
void set_threads(int n);

}  // namespace moe
