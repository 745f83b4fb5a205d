#include "optim/adamw_kernel.h"

#include "half.h"
#include "simd/level.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace dtrain {
namespace adamw {
namespace {

// Below this many elements per thread, starting a thread costs more than it saves.
constexpr size_t kMinPerThread = 1 << 16;
// Thread ranges start on 64-byte boundaries of the fp32 arrays so no two threads share a cache line.
constexpr size_t kChunkAlign = 16;

template <class Fn>
void parallel_for(size_t n, int threads, Fn fn) {
  size_t t = static_cast<size_t>(std::max(1, threads));
  t = std::min(t, std::max<size_t>(1, n / kMinPerThread));
  if (t <= 1) {
    fn(0, n, 0);
    return;
  }
  size_t per = (n + t - 1) / t;
  per = (per + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (size_t i = 1; i < t; ++i) {
    const size_t b = std::min(n, i * per), e = std::min(n, (i + 1) * per);
    if (b < e) pool.emplace_back(fn, b, e, i);
  }
  fn(0, std::min(n, per), 0);
  for (auto& th : pool) th.join();
}

template <ElemType T>
inline float load1(const void* p, size_t i) {
  if constexpr (T == ElemType::f32) return static_cast<const float*>(p)[i];
  if constexpr (T == ElemType::bf16) return bf16ToF32(static_cast<const uint16_t*>(p)[i]);
  if constexpr (T == ElemType::f16) return f16ToF32(static_cast<const uint16_t*>(p)[i]);
}

template <ElemType T>
inline void store1(void* p, size_t i, float x) {
  if constexpr (T == ElemType::f32) static_cast<float*>(p)[i] = x;
  if constexpr (T == ElemType::bf16) static_cast<uint16_t*>(p)[i] = f32ToBf16(x);
  if constexpr (T == ElemType::f16) static_cast<uint16_t*>(p)[i] = f32ToF16(x);
}

// Scalar path: also the tail of the AVX2 path, so both share one definition of an element.
template <ElemType P, ElemType G>
void step_scalar(const Arrays& a, const StepConsts& k, size_t b, size_t e) {
  for (size_t i = b; i < e; ++i) {
    float p = P == ElemType::f32 ? static_cast<float*>(a.param)[i] : a.master[i];
    float m = a.m[i], v = a.v[i];
    update(p, load1<G>(a.grad, i), m, v, k);
    a.m[i] = m;
    a.v[i] = v;
    if constexpr (P != ElemType::f32) a.master[i] = p;
    store1<P>(a.param, i, p);
  }
}

// ---- AVX2 + FMA -------------------------------------------------------------------------------------
#define DTRAIN_AVX2 __attribute__((target("avx2,fma,f16c")))

struct F8 {
  __m256 x;
};
DTRAIN_AVX2 inline F8 operator*(F8 a, float b) { return {_mm256_mul_ps(a.x, _mm256_set1_ps(b))}; }
DTRAIN_AVX2 inline F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.x, b.x)}; }
DTRAIN_AVX2 inline F8 operator/(F8 a, F8 b) { return {_mm256_div_ps(a.x, b.x)}; }
DTRAIN_AVX2 inline F8 operator/(F8 a, float b) { return {_mm256_div_ps(a.x, _mm256_set1_ps(b))}; }
DTRAIN_AVX2 inline F8 operator+(F8 a, float b) { return {_mm256_add_ps(a.x, _mm256_set1_ps(b))}; }
DTRAIN_AVX2 inline F8 madd(F8 a, float b, F8 c) { return {_mm256_fmadd_ps(a.x, _mm256_set1_ps(b), c.x)}; }
DTRAIN_AVX2 inline F8 vsqrt(F8 a) { return {_mm256_sqrt_ps(a.x)}; }

template <ElemType T>
DTRAIN_AVX2 inline F8 load8(const void* p, size_t i) {
  if constexpr (T == ElemType::f32) {
    return {_mm256_loadu_ps(static_cast<const float*>(p) + i)};
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == ElemType::f16) return {_mm256_cvtph_ps(h)};
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
  }
}

template <ElemType T>
DTRAIN_AVX2 inline void store8(void* p, size_t i, F8 x) {
  if constexpr (T == ElemType::f32) {
    _mm256_storeu_ps(static_cast<float*>(p) + i, x.x);
  } else {
    __m128i h;
    if constexpr (T == ElemType::f16) {
      h = _mm256_cvtps_ph(x.x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      // F16C keeps a NaN's payload (sign|0x7e00|payload); f32ToF16 gives sign|0x7e00, so clear the payload.
      const __m256 nan = _mm256_cmp_ps(x.x, x.x, _CMP_UNORD_Q);
      const __m128i nan16 = _mm_packs_epi32(_mm_castps_si128(_mm256_castps256_ps128(nan)),
                                            _mm_castps_si128(_mm256_extractf128_ps(nan, 1)));
      h = _mm_andnot_si128(_mm_and_si128(nan16, _mm_set1_epi16(0x1ff)), h);
    } else {  // round to nearest even; NaN stays a quiet NaN as in f32ToBf16
      const __m256i bits = _mm256_castps_si256(x.x);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
      const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x.x, x.x, _CMP_UNORD_Q));
      const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
      r = _mm256_blendv_epi8(r, quiet, nan);
      const __m256i packed = _mm256_packus_epi32(r, r);  // per 128-bit lane: [a0..a3 a0..a3 | a4..a7 a4..a7]
      h = _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(p) + i), h);
  }
}

template <ElemType P, ElemType G>
DTRAIN_AVX2 void step_avx2(const Arrays& a, const StepConsts& k, size_t b, size_t e) {
  size_t i = b;
  for (; i + 8 <= e; i += 8) {
    F8 p = P == ElemType::f32 ? load8<ElemType::f32>(a.param, i) : load8<ElemType::f32>(a.master, i);
    F8 m = load8<ElemType::f32>(a.m, i), v = load8<ElemType::f32>(a.v, i);
    update(p, load8<G>(a.grad, i), m, v, k);
    store8<ElemType::f32>(a.m, i, m);
    store8<ElemType::f32>(a.v, i, v);
    if constexpr (P != ElemType::f32) store8<ElemType::f32>(a.master, i, p);
    store8<P>(a.param, i, p);
  }
  step_scalar<P, G>(a, k, i, e);
}

template <ElemType T>
DTRAIN_AVX2 double sum_squares_avx2(const void* d, size_t b, size_t e) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  size_t i = b;
  for (; i + 8 <= e; i += 8) {
    const __m256 x = load8<T>(d, i).x;
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
    acc0 = _mm256_fmadd_pd(lo, lo, acc0);
    acc1 = _mm256_fmadd_pd(hi, hi, acc1);
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, _mm256_add_pd(acc0, acc1));
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < e; ++i) {
    const double x = load1<T>(d, i);
    s += x * x;
  }
  return s;
}

template <ElemType T>
double sum_squares_scalar(const void* d, size_t b, size_t e) {
  double s = 0;
  for (size_t i = b; i < e; ++i) {
    const double x = load1<T>(d, i);
    s += x * x;
  }
  return s;
}

using StepFn = void (*)(const Arrays&, const StepConsts&, size_t, size_t);

template <ElemType P, ElemType G>
StepFn pick_step(Simd s) {
  return s == Simd::avx2 ? &step_avx2<P, G> : &step_scalar<P, G>;
}

StepFn pick_step(const Arrays& a, Simd s) {
  if (a.param_type == ElemType::f32) {
    if (a.grad_type != ElemType::f32) throw std::runtime_error("fp32 params need fp32 gradients");
    return pick_step<ElemType::f32, ElemType::f32>(s);
  }
  if (!a.master) throw std::runtime_error("16-bit params need an fp32 master copy");
  if (a.grad_type != ElemType::f32 && a.grad_type != a.param_type) {
    throw std::runtime_error("gradients must be fp32 or the params' own 16-bit type");
  }
  const bool g32 = a.grad_type == ElemType::f32;
  if (a.param_type == ElemType::bf16) {
    return g32 ? pick_step<ElemType::bf16, ElemType::f32>(s) : pick_step<ElemType::bf16, ElemType::bf16>(s);
  }
  return g32 ? pick_step<ElemType::f16, ElemType::f32>(s) : pick_step<ElemType::f16, ElemType::f16>(s);
}

}  // namespace

bool simd_supported(Simd s) { return simd_level_supported(s == Simd::avx2 ? SimdLevel::avx2 : SimdLevel::scalar); }

const char* simd_name(Simd s) { return s == Simd::avx2 ? "avx2" : "scalar"; }

Simd choose_simd(const std::string& request) {
  return choose_simd_level(request, SimdLevel::avx2) == SimdLevel::avx2 ? Simd::avx2 : Simd::scalar;
}

int choose_threads(int request) {
  if (request > 0) return request;
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (!env) return 1;
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  return (end != env && n > 0 && n <= 1024) ? static_cast<int>(n) : 1;
}

void step(const Arrays& a, const StepConsts& k, Simd simd, int threads) {
  const StepFn fn = pick_step(a, simd);
  parallel_for(a.n, threads, [&](size_t b, size_t e, size_t) { fn(a, k, b, e); });
}

double sum_squares(const void* data, ElemType type, size_t n, Simd simd, int threads) {
  using Fn = double (*)(const void*, size_t, size_t);
  Fn fn;
  switch (type) {
    case ElemType::f32:
      fn = simd == Simd::avx2 ? &sum_squares_avx2<ElemType::f32> : &sum_squares_scalar<ElemType::f32>;
      break;
    case ElemType::bf16:
      fn = simd == Simd::avx2 ? &sum_squares_avx2<ElemType::bf16> : &sum_squares_scalar<ElemType::bf16>;
      break;
    default:
      fn = simd == Simd::avx2 ? &sum_squares_avx2<ElemType::f16> : &sum_squares_scalar<ElemType::f16>;
      break;
  }
  std::vector<double> partial(static_cast<size_t>(std::max(1, threads)), 0.0);
  parallel_for(n, threads, [&](size_t b, size_t e, size_t t) { partial[t] = fn(data, b, e); });
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

void convert(const void* src, ElemType st, void* dst, ElemType dt, size_t n) {
  if (st == dt) {
    std::memcpy(dst, src, n * (st == ElemType::f32 ? 4 : 2));
    return;
  }
  if (st != ElemType::f32 && dt != ElemType::f32) throw std::runtime_error("convert: one side must be fp32");
  for (size_t i = 0; i < n; ++i) {
    float x;
    switch (st) {
      case ElemType::f32:
        x = load1<ElemType::f32>(src, i);
        break;
      case ElemType::bf16:
        x = load1<ElemType::bf16>(src, i);
        break;
      default:
        x = load1<ElemType::f16>(src, i);
        break;
    }
    switch (dt) {
      case ElemType::f32:
        store1<ElemType::f32>(dst, i, x);
        break;
      case ElemType::bf16:
        store1<ElemType::bf16>(dst, i, x);
        break;
      default:
        store1<ElemType::f16>(dst, i, x);
        break;
    }
  }
}

}  // namespace adamw
}  // namespace dtrain
