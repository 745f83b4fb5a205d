#include "collectives/reduce.h"

#include <cstring>
#include <exception>

#include "half.h"
#include "simd/level.h"

namespace dtrain {
namespace {

using ReduceFn = void (*)(void*, const void* const*, int, size_t, DType, RedOp);

struct Dispatch {
  ReduceFn fn;
  const char* name;
};

// DTRAIN_SIMD read as every kernel family reads it (simd/level.h); a request this build cannot honour (an
// unknown word, a path the CPU lacks) falls back to the CPU's best instead of failing a collective.
Dispatch choose() {
  SimdLevel s;
  try {
    s = choose_simd_level("auto", SimdLevel::avx2);
  } catch (const std::exception&) {
    s = simd_level_supported(SimdLevel::avx2) ? SimdLevel::avx2 : SimdLevel::scalar;
  }
  if (s == SimdLevel::avx2) return {simd_avx2::reduceInto, "avx2"};
  return {simd_scalar::reduceInto, "scalar"};
}

const Dispatch& dispatch() {
  static const Dispatch d = choose();
  return d;
}

template <typename T>
void divideFloats(T* x, size_t n, T d) {
  for (size_t i = 0; i < n; ++i) x[i] = x[i] / d;
}

template <typename T>
void divideInts(T* x, size_t n, int d) {
  for (size_t i = 0; i < n; ++i) x[i] = T(x[i] / d);
}

}  // namespace

void reduceInto(void* out, const void* const* ins, int n, size_t count, DType t, RedOp op) {
  dispatch().fn(out, ins, n, count, t, op);
}

const char* simdPath() { return dispatch().name; }

void scaleForAvg(void* x, size_t count, DType t, int divisor) {
  if (divisor == 1) return;
  // division, not multiplication by 1/d, so the avg of equal values stays exact
  switch (t) {
    case DType::f32:
      return divideFloats(static_cast<float*>(x), count, float(divisor));
    case DType::f64:
      return divideFloats(static_cast<double*>(x), count, double(divisor));
    case DType::i32:
      return divideInts(static_cast<int32_t*>(x), count, divisor);
    case DType::i64:
      return divideInts(static_cast<int64_t*>(x), count, divisor);
    case DType::bf16: {
      uint16_t* p = static_cast<uint16_t*>(x);
      for (size_t i = 0; i < count; ++i) p[i] = f32ToBf16(bf16ToF32(p[i]) / float(divisor));
      return;
    }
    case DType::f16: {
      uint16_t* p = static_cast<uint16_t*>(x);
      for (size_t i = 0; i < count; ++i) p[i] = f32ToF16(f16ToF32(p[i]) / float(divisor));
      return;
    }
  }
}

}  // namespace dtrain
