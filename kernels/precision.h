// Compute precision of the calling thread (docs/precision.md). The trainer sets it around a
// step's forward and backward; the GEMM ops (matmul, grouped matmul, attention) then round their
// activation operands to bf16 or fp16 (round-to-nearest-even) and multiply in fp32, which is
// what a tensor core with fp32 accumulation computes. Weights come already rounded (the trainer's
// per-step copy, src/train/precision_weights.h). The loss scale multiplies every gradient that
// enters the backward (fp16 dynamic loss scaling, src/train/loss_scaler.h). Like the phase timer,
// it is thread-local so that no op signature carries it; ops that fan out over OpenMP read it on
// the calling thread first.
#pragma once
#include <string>

namespace moe {

enum class Precision { fp32, bf16, fp16 };

// "fp32" | "bf16" | "fp16" (the config schema has validated it).
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);

namespace detail {
inline thread_local Precision compute_precision = Precision::fp32;
inline thread_local double loss_scale = 1.0;
}  // namespace detail

inline Precision compute_precision() { return detail::compute_precision; }
inline double loss_scale() { return detail::loss_scale; }

// Sets the calling thread's compute precision and loss scale for its lifetime, then restores.
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p, double scale = 1.0)
      : prev_(detail::compute_precision), prev_scale_(detail::loss_scale) {
    detail::compute_precision = p;
    detail::loss_scale = scale;
  }
  ~PrecisionScope() {
    detail::compute_precision = prev_;
    detail::loss_scale = prev_scale_;
  }
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision prev_;
  double prev_scale_;
};

// fp32 compute inside its lifetime, loss scale kept (the router's logits stay fp32).
class Fp32Scope {
 public:
  Fp32Scope() : prev_(detail::compute_precision) { detail::compute_precision = Precision::fp32; }
  ~Fp32Scope() { detail::compute_precision = prev_; }
  Fp32Scope(const Fp32Scope&) = delete;
  Fp32Scope& operator=(const Fp32Scope&) = delete;

 private:
  Precision prev_;
};

}  // namespace moe
