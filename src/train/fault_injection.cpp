#include "src/train/fault_injection.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "src/core/error.h"

namespace moe {

bool inject_nan_for_test(int64_t step, const ParamTable& table, float* params) {
  const char* at = std::getenv("MOE_TEST_NAN_STEP");
  const char* name = std::getenv("MOE_TEST_NAN_PARAM");
  if (!at || !name || std::atoll(at) != step) return false;
  const int i = table.index_of(name);
  if (i < 0)
    throw ConfigError(std::string("MOE_TEST_NAN_PARAM=") + name +
                      ": no such parameter (use a logical name such as layers.0.moe.experts.w1)");
  const ParamInfo& p = table.params()[size_t(i)];
  // Element 0 of the global tensor: under expert parallelism only the rank holding its slice.
  const std::vector<int64_t> start = shard_start(p);
  if (p.numel == 0 || std::any_of(start.begin(), start.end(), [](int64_t s) { return s != 0; })) return false;
  params[p.offset] = std::numeric_limits<float>::quiet_NaN();
  std::fprintf(stderr, "moe: test fault: %s[0] = NaN before step %lld (MOE_TEST_NAN_STEP)\n", name, (long long)step);
  return true;
}

}  // namespace moe
