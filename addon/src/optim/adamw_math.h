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

}  // namespace adamw
}  // namespace dtrain
