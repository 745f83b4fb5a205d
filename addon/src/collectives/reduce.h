// Element-wise reductions with run-time dispatch between an AVX2 build and a scalar build of the same
// kernels. DTRAIN_SIMD=scalar|avx2 forces one (tests use it to exercise each path; simd/level.h reads it).
#pragma once
#include "collectives/dtype.h"

namespace dtrain {

// out[i] = op(ins[0][i], ..., ins[n-1][i]) in input order, accumulating 16-bit floats in fp32 and
// rounding once. `out` may alias any input. avg is reduced as a sum (see scaleForAvg).
void reduceInto(void* out, const void* const* ins, int n, size_t count, DType t, RedOp op);
// x[i] /= divisor, for avg (integers truncate toward zero, like C division).
void scaleForAvg(void* x, size_t count, DType t, int divisor);
// "avx2" or "scalar": which build reduceInto uses in this process.
const char* simdPath();

namespace simd_scalar {
void reduceInto(void* out, const void* const* ins, int n, size_t count, DType t, RedOp op);
}
namespace simd_avx2 {
void reduceInto(void* out, const void* const* ins, int n, size_t count, DType t, RedOp op);
}

}  // namespace dtrain
