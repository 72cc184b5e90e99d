// fp16 dynamic loss scaling (docs/precision.md). The backward runs on the loss times S (every
// gradient that enters it is scaled: kernels/precision.h), so that small gradients survive the
// fp16 rounding of the GEMM operands; the optimizer unscales (its clip factor is divided by S).
// A step whose loss or gradient norm is not finite on any rank is skipped by every rank (no
// parameter or optimizer update) and S halves; after `window` good steps in a row S doubles.
// Under fp32 and bf16 the scaler is off: S = 1, and a non-finite step is the trainer's error.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "src/comm/communicator.h"
#include "src/train/config.h"

namespace moe {

class LossScaler {
 public:
  explicit LossScaler(const Config& c);
  LossScaler(bool enabled, double init, int64_t window) : enabled_(enabled), scale_(enabled ? init : 1.0), window_(window) {}

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  int64_t skipped_steps() const { return skipped_; }
  int64_t good_steps() const { return good_; }

  // After the step's loss and (unscaled) gradient norm are known. Collective over `world` when
  // enabled: the non-finite flag is all-reduced, so every rank returns the same answer. True:
  // skip this step. False under fp32/bf16, and when the scale would fall below 1 (the non-finite
  // values are then not an fp16 range problem: the trainer reports them as it does for fp32).
  bool should_skip(double loss, double grad_norm, comm::Communicator& world);

  // Checkpoint state ("loss_scaler" in the manifest's meta), so a resumed run continues exactly.
  nlohmann::json state() const;
  void restore(const nlohmann::json& s);
  // Restores from the checkpoint the run resumes from (checkpoint.resume), if it holds a state.
  void restore_from_resume(const Config& c, const std::string& ckpt_root);

 private:
  bool enabled_;
  double scale_;
  int64_t window_;
  int64_t good_ = 0, skipped_ = 0;
};

// Test-only (tests/e2e/precision_tiny.sh): MOE_TEST_OVERFLOW_STEP=S sets gradient element 0 to
// +inf on rank 0 just after step S's backward (S counts from 1), as an fp16 overflow would.
void inject_overflow_for_test(int64_t step, int rank, float* grads);

}  // namespace moe
