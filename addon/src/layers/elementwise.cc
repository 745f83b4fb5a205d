#include "layers/elementwise.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#define DTRAIN_BODY inline __attribute__((always_inline))

namespace dtrain {
namespace layers {
namespace {

using math::activate;
using math::derivative;
using math::fast_exp;
using math::kGeluC;
using math::kGeluS;
using math::kTanhClamp;
constexpr float kTanhP[] = {math::kTanhP0, math::kTanhP1, math::kTanhP2, math::kTanhP3,
                            math::kTanhP4, math::kTanhP5, math::kTanhP6};
constexpr float kTanhQ[] = {math::kTanhQ0, math::kTanhQ1, math::kTanhQ2, math::kTanhQ3};

#define DTRAIN_AVX2 __attribute__((target("avx2,fma")))
// GELU's AVX2 rows: built without FMA (GCC contracts a multiply and an add into one where the target has it), so
// they round as the scalar formula does, bit for bit. Fused, the rational tanh ends a few ulps below 1 where it
// saturates, and the derivative's 1 − t² turns that into errors of 1e-5. noinline keeps the rows out of the
// avx2,fma callers, where they would be contracted after all.
#define DTRAIN_AVX2_EXACT_INLINE __attribute__((target("avx2"), always_inline)) inline
#define DTRAIN_AVX2_EXACT_ROW __attribute__((target("avx2"), noinline))

// The same steps as rational_tanh, eight lanes at a time; max and min take x second so a NaN stays NaN.
DTRAIN_AVX2_EXACT_INLINE __m256 tanh_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(kTanhClamp), _mm256_max_ps(_mm256_set1_ps(-kTanhClamp), x));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(kTanhP[0]);
  for (size_t i = 1; i < 7; ++i) p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(kTanhP[i]));
  __m256 q = _mm256_set1_ps(kTanhQ[0]);
  for (size_t i = 1; i < 4; ++i) q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(kTanhQ[i]));
  return _mm256_div_ps(_mm256_mul_ps(x, p), q);
}

DTRAIN_AVX2_EXACT_INLINE __m256 gelu_tanh_avx2(__m256 z) {
  const __m256 z3 = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(kGeluC), z), z), z);
  return tanh_avx2(_mm256_mul_ps(_mm256_set1_ps(kGeluS), _mm256_add_ps(z, z3)));
}

// y = gelu(z) over n elements (y may be z); the tail takes the scalar formula.
DTRAIN_AVX2_EXACT_ROW void gelu_row_avx2(const float* z, float* y, size_t n) {
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  size_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 v = _mm256_loadu_ps(z + c);
    const __m256 t = gelu_tanh_avx2(v);
    _mm256_storeu_ps(y + c, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, t)));
  }
  for (; c < n; ++c) y[c] = activate<Act::gelu>(z[c]);
}

// dz = dy ⊙ gelu'(z) over n elements (dz may be dy), in derivative<Act::gelu>'s order of operations.
DTRAIN_AVX2_EXACT_ROW void gelu_grad_row_avx2(const float* dy, const float* z, float* dz, size_t n) {
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 s = _mm256_set1_ps(kGeluS);
  const __m256 c3 = _mm256_set1_ps(3.0f * kGeluC);
  size_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 v = _mm256_loadu_ps(z + c);
    const __m256 t = gelu_tanh_avx2(v);
    const __m256 left = _mm256_mul_ps(half, _mm256_add_ps(one, t));
    const __m256 sech2 = _mm256_sub_ps(one, _mm256_mul_ps(t, t));
    const __m256 inner = _mm256_add_ps(one, _mm256_mul_ps(_mm256_mul_ps(c3, v), v));
    const __m256 right = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, v), sech2), s), inner);
    _mm256_storeu_ps(dz + c, _mm256_mul_ps(_mm256_loadu_ps(dy + c), _mm256_add_ps(left, right)));
  }
  for (; c < n; ++c) dz[c] = dy[c] * derivative<Act::gelu>(z[c]);
}

// kAvx2Gelu: the AVX2 build's GELU rows go through the intrinsics above instead of the compiler's loop.
template <Act A, bool kAvx2Gelu = false>
DTRAIN_BODY void forward_body(float* z, const float* bias, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    float* zr = z + r * cols;
    float* yr = y + r * cols;
    if (bias) {
      for (size_t c = 0; c < cols; ++c) zr[c] += bias[c];
    }
    if constexpr (A == Act::gelu && kAvx2Gelu) {
      gelu_row_avx2(zr, yr, cols);
    } else {
      for (size_t c = 0; c < cols; ++c) yr[c] = activate<A>(zr[c]);
    }
  }
}

// The bias sums run in float per row block but are carried across rows in double.
template <Act A, bool kAvx2Gelu = false>
DTRAIN_BODY void backward_body(const float* dy, const float* z, float* dz, double* sums, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * cols;
    const float* zr = z + r * cols;
    float* dzr = dz + r * cols;
    if constexpr (A == Act::gelu && kAvx2Gelu) {
      gelu_grad_row_avx2(dyr, zr, dzr, cols);
    } else {
      for (size_t c = 0; c < cols; ++c) dzr[c] = dyr[c] * derivative<A>(zr[c]);
    }
    if (sums) {
      for (size_t c = 0; c < cols; ++c) sums[c] += dzr[c];
    }
  }
}

DTRAIN_BODY double xent_body(const float* logits, const int32_t* labels, size_t rows, size_t classes, float scale,
                             float* grad, float* e) {
  double total = 0;
  for (size_t r = 0; r < rows; ++r) {
    const float* x = logits + r * classes;
    float max = x[0];
    for (size_t c = 1; c < classes; ++c) max = std::max(max, x[c]);
    float sum = 0;
    for (size_t c = 0; c < classes; ++c) {
      e[c] = fast_exp(x[c] - max);
      sum += e[c];
    }
    const size_t label = static_cast<size_t>(labels[r]);
    total += std::log(static_cast<double>(sum)) + max - x[label];
    if (grad) {
      float* g = grad + r * classes;
      const float k = scale / sum;
      for (size_t c = 0; c < classes; ++c) g[c] = e[c] * k;
      g[label] -= scale;
    }
  }
  return rows ? total / static_cast<double>(rows) : 0;
}

// One build of every body per target; the attribute on the wrapper is what lets the inlined body use the ISA.
#define DTRAIN_BUILDS(NAME, ATTR, AVX2_GELU)                                                                    \
  ATTR void NAME##_forward(float* z, const float* bias, float* y, size_t rows, size_t cols, Act act) {          \
    if (act == Act::relu) return forward_body<Act::relu>(z, bias, y, rows, cols);                               \
    if (act == Act::gelu) return forward_body<Act::gelu, AVX2_GELU>(z, bias, y, rows, cols);                    \
    return forward_body<Act::none>(z, bias, y, rows, cols);                                                     \
  }                                                                                                             \
  ATTR void NAME##_backward(const float* dy, const float* z, float* dz, double* sums, size_t rows, size_t cols, \
                            Act act) {                                                                          \
    if (act == Act::relu) return backward_body<Act::relu>(dy, z, dz, sums, rows, cols);                         \
    if (act == Act::gelu) return backward_body<Act::gelu, AVX2_GELU>(dy, z, dz, sums, rows, cols);              \
    return backward_body<Act::none>(dy, z, dz, sums, rows, cols);                                               \
  }                                                                                                             \
  ATTR double NAME##_xent(const float* logits, const int32_t* labels, size_t rows, size_t classes, float scale, \
                          float* grad, float* e) {                                                              \
    return xent_body(logits, labels, rows, classes, scale, grad, e);                                            \
  }

DTRAIN_BUILDS(scalar, , false)
DTRAIN_BUILDS(avx2, DTRAIN_AVX2, true)
DTRAIN_BUILDS(avx512, __attribute__((target("avx512f,avx2,fma"))), false)

}  // namespace

void bias_act_forward(float* z, const float* bias, float* y, size_t rows, size_t cols, Act act, SimdLevel simd) {
  if (simd == SimdLevel::avx512) return avx512_forward(z, bias, y, rows, cols, act);
  if (simd == SimdLevel::avx2) return avx2_forward(z, bias, y, rows, cols, act);
  return scalar_forward(z, bias, y, rows, cols, act);
}

void bias_act_backward(const float* dy, const float* z, float* dz, float* dbias, size_t rows, size_t cols, Act act,
                       bool accumulate, SimdLevel simd) {
  std::vector<double> sums(dbias ? cols : 0, 0.0);
  double* s = dbias ? sums.data() : nullptr;
  if (simd == SimdLevel::avx512) {
    avx512_backward(dy, z, dz, s, rows, cols, act);
  } else if (simd == SimdLevel::avx2) {
    avx2_backward(dy, z, dz, s, rows, cols, act);
  } else {
    scalar_backward(dy, z, dz, s, rows, cols, act);
  }
  if (!dbias) return;
  for (size_t c = 0; c < cols; ++c) dbias[c] = static_cast<float>(accumulate ? dbias[c] + sums[c] : sums[c]);
}

double softmax_xent(const float* logits, const int32_t* labels, size_t rows, size_t classes, double scale, float* grad,
                    SimdLevel simd) {
  std::vector<float> e(classes);
  const float k = static_cast<float>(scale);
  if (simd == SimdLevel::avx512) return avx512_xent(logits, labels, rows, classes, k, grad, e.data());
  if (simd == SimdLevel::avx2) return avx2_xent(logits, labels, rows, classes, k, grad, e.data());
  return scalar_xent(logits, labels, rows, classes, k, grad, e.data());
}

}  // namespace layers
}  // namespace dtrain
