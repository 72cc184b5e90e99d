// Vectorisable float exp for the CPU kernels. std::exp only vectorises under -ffast-math, and the
// softmax/SwiGLU loops spend most of their time in it. Accuracy: within 3 ulp of expf on the
// whole float range (Cody-Waite reduction, degree-6 polynomial); overflow gives +inf and
// underflow 0, like expf.
#pragma once
#include <bit>
#include <cstdint>

namespace moe::ops::cpu {

inline float fast_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187e-06f;
  const float xc = x > 88.7228f ? 88.7228f : (x < -87.3365f ? -87.3365f : x);
  // Round to nearest by adding and removing 1.5 * 2^23 (vectorises, unlike the rounding builtins).
  const float n = (xc * kLog2e + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln2 / 2
  // exp(r) by its Taylor series to r^6 in Horner form (remainder < 2e-8 relative on |r| <= ln2/2).
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n as two factors, so that n = 128 (x near the overflow bound) stays representable.
  const int32_t ni = static_cast<int32_t>(n), n1 = ni / 2, n2 = ni - n1;
  const float y = p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
  return x > 88.7228f ? __builtin_inff() : (x < -87.3365f ? 0.0f : y);
}

}  // namespace moe::ops::cpu
