// fp32 <-> bf16 and fp32 <-> fp16 conversions, round-to-nearest-even (ties to even), exact:
// NaN stays NaN (quieted, sign and top payload bits kept), infinities stay infinite, fp32 values
// beyond the half type's range round to infinity, subnormals round correctly (no flush to zero).
// The *_ref functions are the scalar definitions; the array functions give the same bits, using
// AVX-512 BF16 (vcvtneps2bf16) and F16C/AVX-512 (vcvtps2ph) where the CPU has them (runtime check)
// and the scalar code elsewhere.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/precision.h"

namespace moe::half {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t fp32_to_bf16_ref(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN: quiet it
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  // a carry into the exponent is correct
}
inline float bf16_to_fp32(uint16_t h) { return float_of(uint32_t(h) << 16); }

inline uint16_t fp32_to_fp16_ref(float f) {
  const uint32_t u = bits_of(f);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN: quiet it
  if (a >= 0x38800000u) {  // a normal fp16 (>= 2^-14) or beyond the range: rebias, round, clamp to inf
    const uint32_t r = (a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13;
    return uint16_t(sign | (r < 0x7c00u ? r : 0x7c00u));
  }
  const uint32_t e = a >> 23;
  if (e < 102) return uint16_t(sign);  // below half the smallest subnormal (2^-25): zero
  // Subnormal: units of 2^-24; the implicit bit included, shift out 126 - e bits with ties to even.
  const uint32_t m = (a & 0x7fffffu) | 0x800000u, shift = 126 - e;
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

inline float fp16_to_fp32_ref(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return float_of(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));  // inf; NaN quieted
  if (e != 0) return float_of(sign | ((e + 112) << 23) | (m << 13));
  // Subnormal or zero: m * 2^-24 is exact in fp32.
  const float v = float(m) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

// Arrays (any n; out may not alias in).
void fp32_to_bf16(uint16_t* out, const float* in, int64_t n);
void bf16_to_fp32(float* out, const uint16_t* in, int64_t n);
void fp32_to_fp16(uint16_t* out, const float* in, int64_t n);
void fp16_to_fp32(float* out, const uint16_t* in, int64_t n);

// out[i] = the fp32 value of in[i] rounded to `p` (identity for fp32); out may alias in. This is
// how the GEMMs see their operands: fp32 arrays holding exactly representable half values.
void round_to(float* out, const float* in, int64_t n, Precision p);

// Whether the vector paths are in use (for tests and the benchmark log).
bool has_avx512_bf16();
bool has_f16c();
// Tests only: force the scalar paths (false) or restore the CPU check (true).
void set_vector_paths(bool on);

}  // namespace moe::half
