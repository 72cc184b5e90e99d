// Incremental decoding: the keys (after RoPE) and values of every layer for the tokens decoded so
// far, so that each new token attends over the cache instead of recomputing the sequence.
#pragma once
#include <cstdint>
#include <vector>

namespace moe {

class KvCache {
 public:
  // layers x capacity positions x kv_dim floats each for k and v.
  KvCache(int64_t layers, int64_t capacity, int64_t kv_dim);
  float* k(int64_t layer, int64_t pos) { return k_.data() + (layer * capacity_ + pos) * kv_dim_; }
  float* v(int64_t layer, int64_t pos) { return v_.data() + (layer * capacity_ + pos) * kv_dim_; }
  const float* k(int64_t layer, int64_t pos) const { return k_.data() + (layer * capacity_ + pos) * kv_dim_; }
  const float* v(int64_t layer, int64_t pos) const { return v_.data() + (layer * capacity_ + pos) * kv_dim_; }
  int64_t capacity() const { return capacity_; }
  int64_t size() const { return size_; }  // positions filled in every layer
  void advance();                          // after every layer stored position size()
  void clear() { size_ = 0; }

 private:
  int64_t layers_, capacity_, kv_dim_, size_ = 0;
  std::vector<float> k_, v_;
};

// RoPE (rotate-half) of one row x (n_heads * head_dim) at absolute position `pos`, with the
// angles of ops::rope_forward (double, then cast), so cached keys match the full forward's.
void rope_at_position(float* x, int64_t pos, int64_t n_heads, int64_t head_dim, float theta);

// Causal grouped-query attention of the newest query row q (H*hd) over cached positions
// 0..len-1 of one layer (k, v rows of KV*hd, consecutive); out (H*hd). scores: len floats.
void cached_attention(float* out, const float* q, const float* k, const float* v, int64_t len, int64_t H,
                      int64_t KV, int64_t hd, std::vector<float>& scores);

}  // namespace moe
