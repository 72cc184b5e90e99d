// The plan as a table (terminal) or as JSON (--json): the same fields either way.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "src/plan/planner.h"

namespace moe::plan {

nlohmann::json estimate_json(const LayoutEstimate& e);
// `top`: how many fitting and not-fitting layouts to list.
nlohmann::json plan_json(const PlanInputs& in, const PlanResult& r, int64_t top);
std::string plan_table(const PlanInputs& in, const PlanResult& r, int64_t top);

}  // namespace moe::plan
