// Conversions between fp32 and the 16-bit float formats (bf16 truncates fp32's mantissa; fp16 is IEEE
// binary16), rounding to nearest even. Used by the reduction kernels and the avg scaling.
#pragma once
#include <cstdint>
#include <cstring>

namespace dtrain {
// Internal linkage: each instruction-set build of the kernels gets its own copy (no ODR mix-up).
namespace {

inline float bf16ToF32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // keep NaN a NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
  return uint16_t(u >> 16);
}

inline float f16ToF32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
  if (exp == 0x1f)
    u = sign | 0x7f800000u | (man << 13);
  else if (exp != 0)
    u = sign | ((exp + 112u) << 23) | (man << 13);
  else if (man == 0)
    u = sign;
  else {  // subnormal half: normalise
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while (!(man & 0x400u));
    u = sign | (uint32_t(112 - e) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32ToF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u, absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflows to infinity after rounding
  if (absu < 0x38800000u) {                                  // result is subnormal or zero
    if (absu < 0x33000000u) return uint16_t(sign);
    uint32_t man = (absu & 0x7fffffu) | 0x800000u;
    int shift = 126 - int(absu >> 23);  // 14..24
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t v = absu - 0x38000000u;  // rebias exponent 127 → 15
  uint32_t half = v >> 13, rem = v & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return uint16_t(sign | half);
}

}  // namespace
}  // namespace dtrain
