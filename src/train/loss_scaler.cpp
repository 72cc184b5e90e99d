#include "src/train/loss_scaler.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"

namespace moe {

LossScaler::LossScaler(const Config& c)
    : LossScaler(c.train.precision == "fp16", c.train.loss_scale_init, c.train.loss_scale_window) {}

bool LossScaler::should_skip(double loss, double grad_norm, comm::Communicator& world) {
  if (!enabled_) return false;
  double bad = std::isfinite(loss) && std::isfinite(grad_norm) ? 0.0 : 1.0;
  world.allreduce_max(&bad, 1);
  if (bad == 0.0) {
    if (++good_ >= window_) {
      scale_ *= 2.0;
      good_ = 0;
    }
    return false;
  }
  good_ = 0;
  if (scale_ * 0.5 < 1.0) return false;  // give up: the trainer's non-finite error follows
  scale_ *= 0.5;
  ++skipped_;
  return true;
}

nlohmann::json LossScaler::state() const {
  return {{"scale", scale_}, {"good_steps", good_}, {"skipped_steps", skipped_}};
}

void LossScaler::restore(const nlohmann::json& s) {
  scale_ = s.at("scale").get<double>();
  good_ = s.at("good_steps").get<int64_t>();
  skipped_ = s.at("skipped_steps").get<int64_t>();
}

void LossScaler::restore_from_resume(const Config& c, const std::string& ckpt_root) {
  if (!enabled_) return;
  const auto from = find_resume_checkpoint(c, ckpt_root);
  if (!from) return;
  const nlohmann::json m = ckpt::read_manifest(*from);
  // A checkpoint of an fp32/bf16 run has no scaler: fp16 starts from loss_scale_init.
  if (m.contains("meta") && m["meta"].contains("loss_scaler")) restore(m["meta"]["loss_scaler"]);
}

void inject_overflow_for_test(int64_t step, int rank, float* grads) {
  const char* at = std::getenv("MOE_TEST_OVERFLOW_STEP");
  if (!at || std::atoll(at) != step || rank != 0) return;
  grads[0] = std::numeric_limits<float>::infinity();
  std::fprintf(stderr, "moe: test fault: gradient element 0 = inf after step %lld's backward (MOE_TEST_OVERFLOW_STEP)\n",
               (long long)step);
}

}  // namespace moe
