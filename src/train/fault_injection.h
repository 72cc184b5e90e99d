// Test-only fault injection for the non-finite diagnostic (tests/e2e/nan_*.sh):
//   MOE_TEST_NAN_STEP=S MOE_TEST_NAN_PARAM=NAME  sets element 0 of parameter NAME (on the
// rank holding it) to NaN just before step S's forward (S counts from 1, as in messages).
// Without both variables it does nothing; an unknown NAME is a ConfigError naming the variable.
#pragma once
#include <cstdint>

#include "src/model/params.h"

namespace moe {

// Returns whether it changed a parameter.
bool inject_nan_for_test(int64_t step, const ParamTable& table, float* params);

}  // namespace moe
