// Linear warm-up to optim.lr over warmup_steps, then cosine decay to optim.min_lr at train.steps.
#pragma once
#include <cstdint>

namespace moe {

double lr_at(int64_t step, int64_t total_steps, int64_t warmup_steps, double lr, double min_lr);

}  // namespace moe
