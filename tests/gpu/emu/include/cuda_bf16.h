// Emulation stand-in for <cuda_bf16.h>: bf16 as its 16 bits, round-to-nearest-even conversion
// (__float2bfloat16_rn, __floats2bfloat162_rn) like the device's cvt.rn.bf16.f32.
#pragma once
#include "emu_runtime.h"

struct __nv_bfloat16 {
  unsigned short bits;
};
inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float(unsigned(h.bits) << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  unsigned u = 0;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return {0x7fff};  // the device's canonical NaN
  u += 0x7fffu + ((u >> 16) & 1u);     // nearest even (overflow rounds to infinity, as on the device)
  return {static_cast<unsigned short>(u >> 16)};
}
// Two bf16 in one 32-bit word, x in the low half (the lower address), as the device packs them.
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return {__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits; }
