// The layers' per-element math, shared by the CPU kernels (elementwise.cc, one body per SIMD target) and the
// CUDA kernels (addon/cuda/layers.cu), so both backends compute the same activation, derivative and softmax
// exponent, and the CPU tests cover the formulas the GPU runs. Plain arithmetic only: the CPU builds must
// still vectorise, and device code cannot call std::min or memcpy-based bit casts.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DTRAIN_LAYERS_HD __host__ __device__ __forceinline__
#else
#define DTRAIN_LAYERS_HD inline __attribute__((always_inline))
#endif

namespace dtrain {
namespace layers {

enum class Act { none, relu, gelu };  // gelu: the tanh approximation

namespace math {

// std::min / std::max's exact comparisons (NaN handling included), usable on the device.
DTRAIN_LAYERS_HD float lesser(float a, float b) { return b < a ? b : a; }
DTRAIN_LAYERS_HD float greater(float a, float b) { return a < b ? b : a; }

DTRAIN_LAYERS_HD float bits_to_float(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// e^x to about 2e-7 relative, in plain arithmetic the compiler vectorises (libm's expf is one call per element).
DTRAIN_LAYERS_HD float fast_exp(float x) {
  x = lesser(greater(x, -87.0f), 88.0f);
  const float n = floorf(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693145751953125f - n * 1.428606765330187045e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

constexpr float kGeluS = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluC = 0.044715f;

// tanh as a 13/6 rational function on [-7.9, 7.9] (Eigen's float tanh; beyond that tanh rounds to ±1):
// only multiplies, adds, a clamp and a divide, which GCC vectorises in the AVX-512 build. It does not in the
// AVX2 one (it reports control flow), so elementwise.cc has the same steps in intrinsics, from these constants.
constexpr float kTanhClamp = 7.90531110763549805f;
constexpr float kTanhP0 = -2.76076847742355e-16f, kTanhP1 = 2.00018790482477e-13f, kTanhP2 = -8.60467152213735e-11f,
                kTanhP3 = 5.12229709037114e-08f, kTanhP4 = 1.48572235717979e-05f, kTanhP5 = 6.37261928875436e-04f,
                kTanhP6 = 4.89352455891786e-03f;
constexpr float kTanhQ0 = 1.19825839466702e-06f, kTanhQ1 = 1.18534705686654e-04f, kTanhQ2 = 2.26843463243900e-03f,
                kTanhQ3 = 4.89352518554385e-03f;

DTRAIN_LAYERS_HD float rational_tanh(float x) {
  x = lesser(greater(x, -kTanhClamp), kTanhClamp);
  const float x2 = x * x;
  float p = kTanhP0;
  p = p * x2 + kTanhP1;
  p = p * x2 + kTanhP2;
  p = p * x2 + kTanhP3;
  p = p * x2 + kTanhP4;
  p = p * x2 + kTanhP5;
  p = p * x2 + kTanhP6;
  float q = kTanhQ0;
  q = q * x2 + kTanhQ1;
  q = q * x2 + kTanhQ2;
  q = q * x2 + kTanhQ3;
  return x * p / q;
}

DTRAIN_LAYERS_HD float gelu_tanh(float z) { return rational_tanh(kGeluS * (z + kGeluC * z * z * z)); }

template <Act A>
DTRAIN_LAYERS_HD float activate(float z) {
  if (A == Act::relu) return z > 0 ? z : 0.0f;
  if (A == Act::gelu) return 0.5f * z * (1.0f + gelu_tanh(z));
  return z;
}

template <Act A>
DTRAIN_LAYERS_HD float derivative(float z) {
  if (A == Act::relu) return z > 0 ? 1.0f : 0.0f;
  if (A == Act::gelu) {
    const float t = gelu_tanh(z);
    return 0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * kGeluS * (1.0f + 3.0f * kGeluC * z * z);
  }
  return 1.0f;
}

}  // namespace math
}  // namespace layers
}  // namespace dtrain
