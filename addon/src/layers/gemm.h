// Single-threaded fp32 GEMM for the layers, row-major: C (m×n) = op(A) · op(B), or C += that with
// `accumulate`. op(A) is m×k (A stored k×m when trans_a), op(B) is k×n (B stored n×k when trans_b).
// Cache-blocked with packed panels (Goto's loop order); the micro-kernel is picked per call by SimdLevel.
#pragma once
#include <cstddef>

#include "simd/level.h"

namespace dtrain {
namespace layers {

struct GemmArgs {
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  size_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false, accumulate = false;
};

void gemm(const GemmArgs& g, SimdLevel simd);

// Micro-kernels: an MR×NR tile of C from a packed A panel (kc×MR, MR contiguous per k) and a packed B panel
// (kc×NR). `add` adds to C instead of overwriting it. Each is compiled for its own target (gemm_micro.cc).
using MicroFn = void (*)(size_t kc, const float* ap, const float* bp, float* c, size_t ldc, bool add);
struct MicroKernel {
  MicroFn fn;
  size_t mr, nr;
};
MicroKernel micro_scalar();
MicroKernel micro_avx2();
MicroKernel micro_avx512();

}  // namespace layers
}  // namespace dtrain
