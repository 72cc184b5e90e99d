// Counter-based RNG (Philox4x32-10): stream = f(key, counter), so initial weights depend only on
// (seed, parameter name, element index) and never on the parallel layout or on call order.
#pragma once
#include <cstdint>
#include <string_view>

namespace moe {

struct Philox4x32 {
  uint32_t v[4];
};

Philox4x32 philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo);

// 64-bit FNV-1a of a name, mixed with the seed: the key of one parameter's stream.
uint64_t rng_key(uint64_t seed, std::string_view name);

// Element i of the standard-normal stream of `key` (Box-Muller on one Philox block).
float philox_normal(uint64_t key, uint64_t i);
// Element i of the uniform [0,1) stream of `key`.
float philox_uniform(uint64_t key, uint64_t i);

}  // namespace moe
