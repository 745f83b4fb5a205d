// The AVX2 build of the reduction kernels (with F16C for half conversions); only called after a CPUID check.
#pragma GCC target("avx2,f16c,fma")
#include <immintrin.h>

#include <cstring>

#include "collectives/reduce.h"
#include "half.h"

namespace dtrain::simd_avx2 {
#include "collectives/reduce_kernels.inl"
}  // namespace dtrain::simd_avx2
