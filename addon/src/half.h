// The one definition of the conversions between fp32 and the 16-bit floats (bf16: fp32's top half; fp16:
// IEEE binary16), rounding to nearest even. The reduction kernels (one build per instruction set), the
// AdamW kernels and the CUDA kernels all include it, so every path stores the same bits.
// NaN follows torch's CPU conversions: fp16 -> fp32 keeps sign and payload and quiets it (as F16C does);
// fp32 -> fp16 gives sign|0x7e00, payload dropped. fp32 -> bf16 quiets and keeps the payload's top bits:
// torch has no single answer there (0xffff on its AVX2 CPU path, 0x7fc0 in c10, 0x7fff on CUDA).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DTRAIN_HALF_HD __host__ __device__ __forceinline__
#else
#define DTRAIN_HALF_HD inline __attribute__((always_inline))
#endif

namespace dtrain {
// Internal linkage: each instruction-set build (reduce_avx2.cc compiles everything it includes for AVX2)
// gets its own copy, so the linker never hands a scalar caller an AVX2 body.
namespace {

// Device code has no memcpy-based bit cast.
DTRAIN_HALF_HD uint32_t bitsOfF32(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

DTRAIN_HALF_HD float f32OfBits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

DTRAIN_HALF_HD float bf16ToF32(uint16_t h) { return f32OfBits(uint32_t(h) << 16); }

DTRAIN_HALF_HD uint16_t f32ToBf16(float f) {
  uint32_t u = bitsOfF32(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

DTRAIN_HALF_HD float f16ToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu, u;
  if (exp == 0x1f)  // inf, or NaN made quiet
    u = sign | 0x7f800000u | (man << 13) | (man != 0 ? 0x400000u : 0u);
  else if (exp != 0)
    u = sign | ((exp + 112u) << 23) | (man << 13);
  else if (man == 0)
    u = sign;
  else {  // subnormal half: normalise
    uint32_t e = 113;
    while (!(man & 0x400u)) {
      man <<= 1;
      --e;
    }
    u = sign | (e << 23) | ((man & 0x3ffu) << 13);
  }
  return f32OfBits(u);
}

DTRAIN_HALF_HD uint16_t f32ToF16(float f) {
  const uint32_t u = bitsOfF32(f);
  const uint32_t sign = (u >> 16) & 0x8000u, absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: infinity
  if (absu < 0x38800000u) {                                  // subnormal or zero
    if (absu < 0x33000000u) return uint16_t(sign);           // below 2^-25: zero
    const uint32_t man = (absu & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - (absu >> 23);  // 14..24
    const uint32_t half = man >> shift, rem = man & ((1u << shift) - 1u), mid = 1u << (shift - 1u);
    return uint16_t(sign | (half + ((rem > mid || (rem == mid && (half & 1u))) ? 1u : 0u)));
  }
  const uint32_t rebased = absu - 0x38000000u;  // exponent bias 127 -> 15
  return uint16_t(sign | ((rebased + 0xfffu + ((rebased >> 13) & 1u)) >> 13));
}

}  // namespace
}  // namespace dtrain
