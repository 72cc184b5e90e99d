#include "src/core/philox.h"

#include <cmath>

namespace moe {

namespace {
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * b;
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}
}  // namespace

Philox4x32 philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo) {
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, hi0, lo0);
    mulhilo(kM1, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

uint64_t rng_key(uint64_t seed, std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (char c : name) {
    h ^= uint8_t(c);
    h *= 1099511628211ull;
  }
  return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

static inline float to_unit(uint32_t x) {  // (0, 1]: never 0, safe for log
  return (float(x >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

float philox_normal(uint64_t key, uint64_t i) {
  Philox4x32 r = philox4x32(key, 0, i);
  float u1 = to_unit(r.v[0]), u2 = to_unit(r.v[1]);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.283185307179586f * u2);
}

float philox_uniform(uint64_t key, uint64_t i) {
  Philox4x32 r = philox4x32(key, 1, i);
  return float(r.v[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace moe
