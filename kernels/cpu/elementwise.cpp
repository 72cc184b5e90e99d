// Elementwise ops: plain contiguous loops that -O3 -march=native vectorises.
#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace moe::ops {

void add_inplace(float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void scale_inplace(float* a, float s, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) a[i] *= s;
}

// silu(a) = a * sigmoid(a)
void swiglu_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + cpu::fast_exp(-a[i]));
    out[i] = a[i] * sig * b[i];
  }
}

// d silu(a)/da = sig * (1 + a * (1 - sig))
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + cpu::fast_exp(-a[i]));
    if (da) da[i] += dout[i] * b[i] * sig * (1.0f + a[i] * (1.0f - sig));
    if (db) db[i] += dout[i] * a[i] * sig;
  }
}

}  // namespace moe::ops
