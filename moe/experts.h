// The routed experts: one SwiGLU per expert applied to its contiguous rows of the permuted tokens,
// as grouped GEMMs (one call for all experts).
#pragma once
#include <cstdint>
#include <vector>

namespace moe {

struct ExpertActs {
  std::vector<float> a, b, h;  // (M, Fe)
  std::vector<float> out;      // (M, D)
};

struct ExpertScratch {
  std::vector<float> da, db, dh;
};

// x (M, D) grouped by expert per `offsets` (E+1); w1/w3 (E, Fe, D), w2 (E, D, Fe).
void experts_forward(ExpertActs& acts, const float* x, const float* w1, const float* w3, const float* w2,
                     const int64_t* offsets, int64_t E, int64_t D, int64_t Fe);
// dx (M, D) += ...; grads accumulate; dout is dL/d(acts.out).
void experts_backward(float* dx, float* gw1, float* gw3, float* gw2, const float* dout, const ExpertActs& acts,
                      ExpertScratch& s, const float* x, const float* w1, const float* w3, const float* w2,
                      const int64_t* offsets, int64_t E, int64_t D, int64_t Fe);

}  // namespace moe
