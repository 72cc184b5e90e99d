// An in-process group: n communicators over shared memory, one per thread. It implements the
// whole interface, so multi-rank code (dispatchers, buckets, the process grid) can be unit-tested
// in one process; it is not meant to be fast. Non-blocking calls complete before they return.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "src/comm/communicator.h"

namespace moe::comm {

std::vector<std::shared_ptr<Communicator>> make_thread_group(int n, const std::string& name = "threads");

}  // namespace moe::comm
