// Device buffers between guard bands, for the row-op tests: a write outside the buffer (a
// padding row taken as row -1, say) changes a sentinel and fails the test. Also fp32 <-> T helpers.
#pragma once
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {

// n values at `off` elements past a guard band of `pad` sentinels, with another band after them.
template <typename T>
struct Guarded {
  int64_t n, pad, off;
  std::vector<T> init;
  Dev<T> buf;
  static std::vector<T> layout(const std::vector<T>& h, int64_t pad, int64_t off) {
    std::vector<T> full(size_t(2 * pad + off + int64_t(h.size())), sentinel());
    std::copy(h.begin(), h.end(), full.begin() + pad + off);
    return full;
  }
  Guarded(const std::vector<T>& h, int64_t pad_, int64_t off_)
      : n(int64_t(h.size())), pad(pad_), off(off_), init(layout(h, pad_, off_)), buf(init) {}
  static T sentinel() {
    if constexpr (std::is_same_v<T, float>) return 4242.0f;
    else if constexpr (std::is_same_v<T, int32_t>) return 4242;
    else return __float2bfloat16_rn(4242.0f);
  }
  T* ptr() { return buf.ptr + pad + off; }
  std::vector<T> host() const {
    const auto full = buf.host();
    return std::vector<T>(full.begin() + pad + off, full.begin() + pad + off + n);
  }
  bool guards_intact() const {
    const auto full = buf.host();
    for (int64_t i = 0; i < int64_t(full.size()); ++i) {
      if (i >= pad + off && i < pad + off + n) continue;
      if (std::memcmp(&full[size_t(i)], &init[size_t(i)], sizeof(T)) != 0) return false;
    }
    return true;
  }
};

inline std::vector<float> as_float(const std::vector<float>& x) { return x; }
inline std::vector<float> as_float(const std::vector<bf16>& x) { return to_float(x); }
template <typename T>
inline std::vector<T> from_floats(const std::vector<float>& x) {
  if constexpr (std::is_same_v<T, float>) return x;
  else return to_bf16(x);
}

}  // namespace moe::gpu_test
