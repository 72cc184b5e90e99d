#include "src/model/kv_cache.h"

#include <algorithm>
#include <cmath>

#include "src/core/error.h"

namespace moe {

KvCache::KvCache(int64_t layers, int64_t capacity, int64_t kv_dim)
    : layers_(layers),
      capacity_(capacity),
      kv_dim_(kv_dim),
      k_(size_t(layers * capacity * kv_dim)),
      v_(size_t(layers * capacity * kv_dim)) {}

void KvCache::advance() {
  MOE_CHECK(size_ < capacity_, "kv cache: all " + std::to_string(capacity_) + " positions are used");
  ++size_;
}

void rope_at_position(float* x, int64_t pos, int64_t n_heads, int64_t head_dim, float theta) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(double(theta), -2.0 * double(i) / double(head_dim));
    const double angle = double(pos) * inv_freq;
    const float c = float(std::cos(angle)), s = float(std::sin(angle));
    for (int64_t h = 0; h < n_heads; ++h) {
      float* y = x + h * head_dim;
      const float x0 = y[i], x1 = y[i + half];
      y[i] = x0 * c - x1 * s;
      y[i + half] = x1 * c + x0 * s;
    }
  }
}

void cached_attention(float* out, const float* q, const float* k, const float* v, int64_t len, int64_t H,
                      int64_t KV, int64_t hd, std::vector<float>& scores) {
  MOE_CHECK(KV > 0 && H % KV == 0 && len > 0, "cached_attention: bad head counts or empty cache");
  const int64_t group = H / KV, kvC = KV * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  scores.resize(size_t(len));
  for (int64_t h = 0; h < H; ++h) {
    const float* qh = q + h * hd;
    const int64_t off = (h / group) * hd;
    float mx = -INFINITY;
    for (int64_t j = 0; j < len; ++j) {
      float dot = 0;
      for (int64_t d = 0; d < hd; ++d) dot += qh[d] * k[j * kvC + off + d];
      scores[size_t(j)] = dot * scale;
      mx = std::max(mx, scores[size_t(j)]);
    }
    float sum = 0;
    for (int64_t j = 0; j < len; ++j) sum += scores[size_t(j)] = std::exp(scores[size_t(j)] - mx);
    float* y = out + h * hd;
    for (int64_t d = 0; d < hd; ++d) y[d] = 0;
    for (int64_t j = 0; j < len; ++j) {
      const float p = scores[size_t(j)] / sum;
      for (int64_t d = 0; d < hd; ++d) y[d] += p * v[j * kvC + off + d];
    }
  }
}

}  // namespace moe
