#include "layers/elementwise.h"

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
