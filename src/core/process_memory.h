// The process's own memory figures from the OS (Linux /proc/self/status).
#pragma once
#include <cstdint>

namespace moe {

// Peak resident set size of this process so far (VmHWM), in bytes; 0 where it cannot be read.
int64_t peak_rss_bytes();

}  // namespace moe
