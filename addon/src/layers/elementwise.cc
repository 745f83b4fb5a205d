#include "layers/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#define DTRAIN_BODY inline __attribute__((always_inline))

namespace dtrain {
namespace layers {
namespace {

// e^x to about 2e-7 relative, in plain arithmetic the compiler vectorises (libm's expf is one call per element).
DTRAIN_BODY float fast_exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693145751953125f - n * 1.428606765330187045e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

constexpr float kGeluS = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluC = 0.044715f;

// tanh as a 13/6 rational function on [-7.9, 7.9] (Eigen's float tanh; beyond that tanh rounds to ±1):
// only multiplies, adds, a clamp and a divide, which GCC vectorises in the AVX-512 build (not yet in the
// AVX2 and baseline ones: it reports control flow there).
DTRAIN_BODY float rational_tanh(float x) {
  x = std::min(std::max(x, -7.90531110763549805f), 7.90531110763549805f);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

DTRAIN_BODY float gelu_tanh(float z) { return rational_tanh(kGeluS * (z + kGeluC * z * z * z)); }

template <Act A>
DTRAIN_BODY float activate(float z) {
  if (A == Act::relu) return z > 0 ? z : 0.0f;
  if (A == Act::gelu) return 0.5f * z * (1.0f + gelu_tanh(z));
  return z;
}

template <Act A>
DTRAIN_BODY float derivative(float z) {
  if (A == Act::relu) return z > 0 ? 1.0f : 0.0f;
  if (A == Act::gelu) {
    const float t = gelu_tanh(z);
    return 0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * kGeluS * (1.0f + 3.0f * kGeluC * z * z);
  }
  return 1.0f;
}

template <Act A>
DTRAIN_BODY void forward_body(float* z, const float* bias, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    float* zr = z + r * cols;
    float* yr = y + r * cols;
    if (bias) {
      for (size_t c = 0; c < cols; ++c) zr[c] += bias[c];
    }
    for (size_t c = 0; c < cols; ++c) yr[c] = activate<A>(zr[c]);
  }
}

// The bias sums run in float per row block but are carried across rows in double.
template <Act A>
DTRAIN_BODY void backward_body(const float* dy, const float* z, float* dz, double* sums, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * cols;
    const float* zr = z + r * cols;
    float* dzr = dz + r * cols;
    for (size_t c = 0; c < cols; ++c) dzr[c] = dyr[c] * derivative<A>(zr[c]);
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
#define DTRAIN_BUILDS(NAME, ATTR)                                                                               \
  ATTR void NAME##_forward(float* z, const float* bias, float* y, size_t rows, size_t cols, Act act) {          \
    if (act == Act::relu) return forward_body<Act::relu>(z, bias, y, rows, cols);                               \
    if (act == Act::gelu) return forward_body<Act::gelu>(z, bias, y, rows, cols);                               \
    return forward_body<Act::none>(z, bias, y, rows, cols);                                                     \
  }                                                                                                             \
  ATTR void NAME##_backward(const float* dy, const float* z, float* dz, double* sums, size_t rows, size_t cols, \
                            Act act) {                                                                          \
    if (act == Act::relu) return backward_body<Act::relu>(dy, z, dz, sums, rows, cols);                         \
    if (act == Act::gelu) return backward_body<Act::gelu>(dy, z, dz, sums, rows, cols);                         \
    return backward_body<Act::none>(dy, z, dz, sums, rows, cols);                                               \
  }                                                                                                             \
  ATTR double NAME##_xent(const float* logits, const int32_t* labels, size_t rows, size_t classes, float scale, \
                          float* grad, float* e) {                                                              \
    return xent_body(logits, labels, rows, classes, scale, grad, e);                                            \
  }

DTRAIN_BUILDS(scalar, )
DTRAIN_BUILDS(avx2, __attribute__((target("avx2,fma"))))
DTRAIN_BUILDS(avx512, __attribute__((target("avx512f,avx2,fma"))))

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
