// The scalar build of the reduction kernels: no vectorization, the reference every SIMD path must match.
#pragma GCC optimize("no-tree-vectorize")
#include <cstring>

#include "collectives/reduce.h"
#include "half.h"

namespace dtrain::simd_scalar {
#include "collectives/reduce_kernels.inl"
}  // namespace dtrain::simd_scalar
