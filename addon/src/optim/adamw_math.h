// The AdamW per-element formula, shared by the CPU kernels (scalar and AVX2) and the CUDA kernel, so every
// backend computes torch.optim.AdamW's update in the same order (torch 1.13, _single_tensor_adamw):
//   p *= 1 - lr·wd;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
//   p -= (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)
// The formula is written once over a value type V: float on the host and on the device, and a SIMD
// wrapper type in the AVX2 kernel, which supplies its own madd/vsqrt overloads.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DTRAIN_HD __host__ __device__ __forceinline__
#else
// always_inline lets the formula inline into the AVX2 kernel, whose target("avx2,fma") context the
// SIMD operators need.
#define DTRAIN_HD inline __attribute__((always_inline))
#endif

namespace dtrain {
namespace adamw {

// Per-step constants, computed once on the host in double and rounded to float, like torch's Python
// scalars reaching the float kernels.
struct StepConsts {
  float decay;  // 1 - lr·weight_decay
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float bc2_sqrt;  // sqrt(1 - β2^t)
  float eps;
  float neg_step_size;  // -lr / (1 - β1^t)
  float grad_scale;     // global-norm clipping coefficient (1 when not clipping)
};

struct Hyper {
  double lr, beta1, beta2, eps, weight_decay;
};

// `step` is the step number after incrementing (1 on the first update), as in torch.
DTRAIN_HD StepConsts make_step_consts(const Hyper& h, int64_t step, float grad_scale) {
  StepConsts k;
  const double bc1 = 1.0 - pow(h.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - pow(h.beta2, static_cast<double>(step));
  k.decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  k.beta1 = static_cast<float>(h.beta1);
  k.one_minus_beta1 = static_cast<float>(1.0 - h.beta1);
  k.beta2 = static_cast<float>(h.beta2);
  k.one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
  k.bc2_sqrt = static_cast<float>(sqrt(bc2));
  k.eps = static_cast<float>(h.eps);
  k.neg_step_size = static_cast<float>(-(h.lr / bc1));
  k.grad_scale = grad_scale;
  return k;
}

DTRAIN_HD float madd(float a, float b, float c) { return a * b + c; }
DTRAIN_HD float vsqrt(float x) { return sqrtf(x); }

// One element: reads p, g, m, v; writes p, m, v. V is float or a SIMD wrapper with the same operators.
template <class V, class S>
DTRAIN_HD void update(V& p, V g, V& m, V& v, const S& k) {
  g = g * k.grad_scale;
  p = p * k.decay;
  m = madd(m, k.beta1, g * k.one_minus_beta1);
  v = madd(v, k.beta2, (g * g) * k.one_minus_beta2);
  const V denom = vsqrt(v) / k.bc2_sqrt + k.eps;
  p = madd(m / denom, k.neg_step_size, p);
}

// bf16 and fp16 conversions with round-to-nearest-even, bit-identical to torch and to F16C.
DTRAIN_HD float bf16_to_float(uint16_t h) {
  union {
    uint32_t u;
    float f;
  } x;
  x.u = static_cast<uint32_t>(h) << 16;
  return x.f;
}

DTRAIN_HD uint16_t float_to_bf16(float f) {
  union {
    uint32_t u;
    float f;
  } x;
  x.f = f;
  if ((x.u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x.u >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((x.u >> 16) & 1u);
  return static_cast<uint16_t>((x.u + rounding) >> 16);
}

DTRAIN_HD float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  union {
    uint32_t u;
    float f;
  } x;
  if (exp == 0x1f) {
    x.u = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      x.u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      x.u = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    x.u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return x.f;
}

DTRAIN_HD uint16_t float_to_fp16(float f) {
  union {
    uint32_t u;
    float f;
  } x;
  x.f = f;
  const uint32_t sign = (x.u >> 16) & 0x8000u;
  const uint32_t abs = x.u & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN (NaN stays quiet)
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero, round to nearest even
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0
    const uint32_t e = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14 + (113 - e)
    const uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t mid = 1u << (shift - 1);
    const uint32_t rounded = half + ((rem > mid || (rem == mid && (half & 1u))) ? 1u : 0u);
    return static_cast<uint16_t>(sign | rounded);
  }
  const uint32_t rebased = abs - ((127u - 15u) << 23);
  const uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

}  // namespace adamw
}  // namespace dtrain
