// Dense SwiGLU feed-forward: y = w2(silu(w1 x) * (w3 x)). Also the shared experts of a MoE layer.
#pragma once
#include <cstdint>
#include <vector>

namespace moe {

struct SwigluActs {
  std::vector<float> a, b, h;  // (N, F): w1 x, w3 x, silu(a) * b
  void resize(int64_t N, int64_t F);
};

struct SwigluScratch {
  std::vector<float> da, db, dh;
  void resize(int64_t N, int64_t F);
};

// The hidden activations alone: acts.a = w1 xn, acts.b = w3 xn, acts.h = silu(a) * b.
void swiglu_hidden_forward(SwigluActs& acts, const float* xn, const float* w1, const float* w3, int64_t N, int64_t D,
                           int64_t F);
// out (N, D) += w2(silu(w1 xn) * (w3 xn)).
void swiglu_mlp_forward(float* out, SwigluActs& acts, const float* xn, const float* w1, const float* w3,
                        const float* w2, int64_t N, int64_t D, int64_t F);
// dxn += ..., grads accumulate into gw1/gw3/gw2. dout is dL/d(out).
void swiglu_mlp_backward(float* dxn, float* gw1, float* gw3, float* gw2, const float* dout, const SwigluActs& acts,
                         SwigluScratch& s, const float* xn, const float* w1, const float* w3, const float* w2,
                         int64_t N, int64_t D, int64_t F);

}  // namespace moe
