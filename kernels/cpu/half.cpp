// Vector paths of the half conversions (kernels/cpu/half.h). Each is compiled for its
// instruction set with a target attribute and chosen at run time, so the binary still runs (with
// the scalar paths, same bits) on CPUs without them.
#include "kernels/cpu/half.h"

// GCC 12 reports its own AVX-512 intrinsics (their _mm512_undefined_* operands) as possibly
// uninitialised when they are inlined under a target attribute: a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "src/core/error.h"

namespace moe {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  MOE_CHECK(name == "fp16", "unknown precision " + name);
  return Precision::fp16;
}

const char* precision_name(Precision p) {
  return p == Precision::fp32 ? "fp32" : p == Precision::bf16 ? "bf16" : "fp16";
}

namespace half {

namespace {

bool g_vectors = true;

#define MOE_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define MOE_AVX512F16C __attribute__((target("avx512f,f16c")))

// vcvtneps2bf16 rounds to nearest even and quiets NaN like fp32_to_bf16_ref, but always treats
// fp32 subnormal inputs as zero: those lanes take the integer rounding instead.
MOE_AVX512BF16 __m256i bf16_16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m256i fast = (__m256i)_mm512_cvtneps_pbh(x);
  const __m512i expo = _mm512_and_si512(u, _mm512_set1_epi32(0x7f800000));
  const __m512i mant = _mm512_and_si512(u, _mm512_set1_epi32(0x007fffff));
  const __mmask16 sub = _mm512_cmpeq_epi32_mask(expo, _mm512_setzero_si512()) &
                        _mm512_cmpneq_epi32_mask(mant, _mm512_setzero_si512());
  if (!sub) return fast;
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  return _mm256_mask_blend_epi16(sub, fast, _mm512_cvtepi32_epi16(r));
}

MOE_AVX512BF16 void fp32_to_bf16_avx512(uint16_t* out, const float* in, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i*)(out + i), bf16_16(_mm512_loadu_ps(in + i)));
  for (; i < n; ++i) out[i] = fp32_to_bf16_ref(in[i]);
}

MOE_AVX512BF16 void round_bf16_avx512(float* out, const float* in, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i h = _mm512_cvtepu16_epi32(bf16_16(_mm512_loadu_ps(in + i)));
    _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
  }
  for (; i < n; ++i) out[i] = bf16_to_fp32(fp32_to_bf16_ref(in[i]));
}

// vcvtps2ph with round-to-nearest-even is exact for every input (overflow -> inf, subnormals kept,
// NaN quieted with its top payload bits, as fp32_to_fp16_ref); vcvtph2ps is exact.
MOE_AVX512F16C void fp32_to_fp16_avx512(uint16_t* out, const float* in, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256((__m256i*)(out + i), _mm512_cvtps_ph(_mm512_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) out[i] = fp32_to_fp16_ref(in[i]);
}

MOE_AVX512F16C void fp16_to_fp32_avx512(float* out, const uint16_t* in, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(in + i))));
  for (; i < n; ++i) out[i] = fp16_to_fp32_ref(in[i]);
}

MOE_AVX512F16C void round_fp16_avx512(float* out, const float* in, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT)));
  for (; i < n; ++i) out[i] = fp16_to_fp32_ref(fp32_to_fp16_ref(in[i]));
}

bool cpu_bf16() {
  static const bool on = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  return on;
}
bool cpu_f16c() {
  static const bool on = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("f16c");
  return on;
}

}  // namespace

bool has_avx512_bf16() { return g_vectors && cpu_bf16(); }
bool has_f16c() { return g_vectors && cpu_f16c(); }
void set_vector_paths(bool on) { g_vectors = on; }

void fp32_to_bf16(uint16_t* out, const float* in, int64_t n) {
  if (has_avx512_bf16()) return fp32_to_bf16_avx512(out, in, n);
  for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_bf16_ref(in[i]);
}

void bf16_to_fp32(float* out, const uint16_t* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(in[i]);  // a shift: the compiler vectorises it
}

void fp32_to_fp16(uint16_t* out, const float* in, int64_t n) {
  if (has_f16c()) return fp32_to_fp16_avx512(out, in, n);
  for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16_ref(in[i]);
}

void fp16_to_fp32(float* out, const uint16_t* in, int64_t n) {
  if (has_f16c()) return fp16_to_fp32_avx512(out, in, n);
  for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32_ref(in[i]);
}

void round_to(float* out, const float* in, int64_t n, Precision p) {
  if (p == Precision::bf16) {
    if (has_avx512_bf16()) return round_bf16_avx512(out, in, n);
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(fp32_to_bf16_ref(in[i]));
  } else if (p == Precision::fp16) {
    if (has_f16c()) return round_fp16_avx512(out, in, n);
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32_ref(fp32_to_fp16_ref(in[i]));
  } else if (out != in) {
    std::memcpy(out, in, size_t(n) * sizeof(float));
  }
}

}  // namespace half
}  // namespace moe
