// Rotary position embedding, rotate-half convention: pairs (i, i + hd/2) rotate by
// angle = pos * theta^(-2i/hd). Angles and their cos/sin are computed in double, then cast, so that
// the CPU and GPU twins use the same float tables.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

namespace {

struct RopeTable {
  std::vector<float> cos, sin;  // [T, hd/2]
};

RopeTable rope_table(int64_t T, int64_t head_dim, float theta) {
  MOE_CHECK(head_dim % 2 == 0, "rope: head_dim must be even, got " + std::to_string(head_dim));
  const int64_t half = head_dim / 2;
  RopeTable tab{std::vector<float>(T * half), std::vector<float>(T * half)};
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq =
        std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    for (int64_t t = 0; t < T; ++t) {
      const double angle = static_cast<double>(t) * inv_freq;
      tab.cos[t * half + i] = static_cast<float>(std::cos(angle));
      tab.sin[t * half + i] = static_cast<float>(std::sin(angle));
    }
  }
  return tab;
}

}  // namespace

void rope_forward(float* out, const float* inp, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                  float theta) {
  const RopeTable tab = rope_table(T, head_dim, theta);
  const int64_t half = head_dim / 2, C = n_heads * head_dim;
#pragma omp parallel for schedule(static) if (B * T * C > (1 << 15))
  for (int64_t row = 0; row < B * T; ++row) {
    const float *c = tab.cos.data() + (row % T) * half, *s = tab.sin.data() + (row % T) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      const float* x = inp + row * C + h * head_dim;
      float* y = out + row * C + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {  // read both halves first: out may alias inp
        const float x0 = x[i], x1 = x[i + half];
        y[i] = x0 * c[i] - x1 * s[i];
        y[i + half] = x1 * c[i] + x0 * s[i];
      }
    }
  }
}

void rope_backward(float* dinp, const float* dout, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                   float theta) {
  const RopeTable tab = rope_table(T, head_dim, theta);
  const int64_t half = head_dim / 2, C = n_heads * head_dim;
#pragma omp parallel for schedule(static) if (B * T * C > (1 << 15))
  for (int64_t row = 0; row < B * T; ++row) {
    const float *c = tab.cos.data() + (row % T) * half, *s = tab.sin.data() + (row % T) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      const float* dy = dout + row * C + h * head_dim;
      float* dx = dinp + row * C + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float d0 = dy[i], d1 = dy[i + half];
        dx[i] += d0 * c[i] + d1 * s[i];
        dx[i + half] += d1 * c[i] - d0 * s[i];
      }
    }
  }
}

}  // namespace moe::ops
