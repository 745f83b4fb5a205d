// The GEMM micro-kernels, each compiled for its target with a function attribute (not a file-wide pragma), so
// inline library code in this file stays baseline x86-64 and one binary runs on every CPU.
#include <immintrin.h>

#include "layers/gemm.h"

namespace dtrain {
namespace layers {
namespace {

// Baseline ISA: a 4×8 tile the compiler keeps in SSE registers.
constexpr size_t kScalarMr = 4, kScalarNr = 8;
void micro_scalar_fn(size_t kc, const float* ap, const float* bp, float* c, size_t ldc, bool add) {
  float acc[kScalarMr][kScalarNr] = {};
  for (size_t p = 0; p < kc; ++p) {
    for (size_t r = 0; r < kScalarMr; ++r) {
      const float a = ap[r];
      for (size_t j = 0; j < kScalarNr; ++j) acc[r][j] += a * bp[j];
    }
    ap += kScalarMr;
    bp += kScalarNr;
  }
  for (size_t r = 0; r < kScalarMr; ++r) {
    for (size_t j = 0; j < kScalarNr; ++j) c[r * ldc + j] = add ? c[r * ldc + j] + acc[r][j] : acc[r][j];
  }
}

// AVX2 + FMA: 6×16, twelve ymm accumulators, two B loads and a broadcast (15 of 16 registers).
constexpr size_t kAvx2Mr = 6, kAvx2Nr = 16;
__attribute__((target("avx2,fma"))) void micro_avx2_fn(size_t kc, const float* ap, const float* bp, float* c,
                                                       size_t ldc, bool add) {
  __m256 acc[kAvx2Mr][2];
#pragma GCC unroll 6
  for (size_t r = 0; r < kAvx2Mr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (size_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
    for (size_t r = 0; r < kAvx2Mr; ++r) {
      const __m256 a = _mm256_broadcast_ss(ap + r);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
    ap += kAvx2Mr;
    bp += kAvx2Nr;
  }
#pragma GCC unroll 6
  for (size_t r = 0; r < kAvx2Mr; ++r) {
    float* row = c + r * ldc;
    if (add) {
      acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(row));
      acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, acc[r][0]);
    _mm256_storeu_ps(row + 8, acc[r][1]);
  }
}

// AVX-512F: 12×32, twenty-four zmm accumulators of 32 registers.
constexpr size_t kAvx512Mr = 12, kAvx512Nr = 32;
__attribute__((target("avx512f"))) void micro_avx512_fn(size_t kc, const float* ap, const float* bp, float* c,
                                                        size_t ldc, bool add) {
  __m512 acc[kAvx512Mr][2];
#pragma GCC unroll 12
  for (size_t r = 0; r < kAvx512Mr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (size_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
    for (size_t r = 0; r < kAvx512Mr; ++r) {
      const __m512 a = _mm512_set1_ps(ap[r]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
    ap += kAvx512Mr;
    bp += kAvx512Nr;
  }
#pragma GCC unroll 12
  for (size_t r = 0; r < kAvx512Mr; ++r) {
    float* row = c + r * ldc;
    if (add) {
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(row));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, acc[r][0]);
    _mm512_storeu_ps(row + 16, acc[r][1]);
  }
}

}  // namespace

MicroKernel micro_scalar() { return {micro_scalar_fn, kScalarMr, kScalarNr}; }
MicroKernel micro_avx2() { return {micro_avx2_fn, kAvx2Mr, kAvx2Nr}; }
MicroKernel micro_avx512() { return {micro_avx512_fn, kAvx512Mr, kAvx512Nr}; }

}  // namespace layers
}  // namespace dtrain
