#include "layers/gemm.h"

#include <xmmintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace dtrain {
namespace layers {
namespace {

// Blocking: a packed B micro-panel (kKc × NR) stays in L1 across the A panels, a packed A block
// (MC × kKc) in L2, the packed B block (kKc × kNc) in L3.
constexpr size_t kKc = 256;
constexpr size_t kNc = 3072;
constexpr size_t kMcTarget = 144;

struct Blocking {
  MicroKernel micro;
  size_t mc;
};

Blocking blocking(SimdLevel s) {
  const MicroKernel k = s == SimdLevel::avx512 ? micro_avx512() : s == SimdLevel::avx2 ? micro_avx2() : micro_scalar();
  return {k, std::max(k.mr, kMcTarget / k.mr * k.mr)};
}

// Packing buffers, one pair per thread, 64-byte aligned for the aligned panel loads; grown, never shrunk.
struct Buffer {
  float* data = nullptr;
  size_t size = 0;
  ~Buffer() { std::free(data); }
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      data = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (!data) throw std::bad_alloc();
      size = n;
    }
    return data;
  }
};
thread_local Buffer packed_a, packed_b;

// dst[p * w + r] = src[r * ld + p] for r < rows, p < kc, and zero for r in [rows, w): the packing of an
// operand whose depth runs along its rows. 4×4 SSE transposes (baseline x86-64, no dispatch needed).
void pack_across(const float* src, size_t ld, size_t rows, size_t kc, size_t w, float* dst) {
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* s = src + r * ld;
    size_t p = 0;
    for (; p + 4 <= kc; p += 4) {
      __m128 a = _mm_loadu_ps(s + p), b = _mm_loadu_ps(s + ld + p);
      __m128 c = _mm_loadu_ps(s + 2 * ld + p), d = _mm_loadu_ps(s + 3 * ld + p);
      _MM_TRANSPOSE4_PS(a, b, c, d);
      _mm_storeu_ps(dst + p * w + r, a);
      _mm_storeu_ps(dst + (p + 1) * w + r, b);
      _mm_storeu_ps(dst + (p + 2) * w + r, c);
      _mm_storeu_ps(dst + (p + 3) * w + r, d);
    }
    for (; p < kc; ++p) {
      for (size_t q = 0; q < 4; ++q) dst[p * w + r + q] = s[q * ld + p];
    }
  }
  for (; r < rows; ++r) {
    for (size_t p = 0; p < kc; ++p) dst[p * w + r] = src[r * ld + p];
  }
  if (rows == w) return;
  for (size_t p = 0; p < kc; ++p) std::memset(dst + p * w + rows, 0, (w - rows) * sizeof(float));
}

// dst[p * w + j] = src[p * ld + j] for j < cols, zero for j in [cols, w): depth runs down the operand.
void pack_along(const float* src, size_t ld, size_t cols, size_t kc, size_t w, float* dst) {
  for (size_t p = 0; p < kc; ++p) {
    std::memcpy(dst + p * w, src + p * ld, cols * sizeof(float));
    if (cols < w) std::memset(dst + p * w + cols, 0, (w - cols) * sizeof(float));
  }
}

// Rows [i0, i0+mc) × depth [p0, p0+kc) of op(A) into panels of `mr` rows: panel q holds kc groups of mr
// (row-contiguous per depth step), rows past the edge zero.
void pack_a(const GemmArgs& g, size_t i0, size_t mc, size_t p0, size_t kc, size_t mr, float* out) {
  for (size_t q = 0; q < mc; q += mr) {
    const size_t rows = std::min(mr, mc - q);
    if (g.trans_a) {  // A is k×m
      pack_along(g.a + p0 * g.m + i0 + q, g.m, rows, kc, mr, out + q * kc);
    } else {
      pack_across(g.a + (i0 + q) * g.k + p0, g.k, rows, kc, mr, out + q * kc);
    }
  }
}

// Depth [p0, p0+kc) × columns [j0, j0+nc) of op(B) into panels of `nr` columns, columns past the edge zero.
void pack_b(const GemmArgs& g, size_t p0, size_t kc, size_t j0, size_t nc, size_t nr, float* out) {
  for (size_t q = 0; q < nc; q += nr) {
    const size_t cols = std::min(nr, nc - q);
    if (g.trans_b) {  // B is n×k
      pack_across(g.b + (j0 + q) * g.k + p0, g.k, cols, kc, nr, out + q * kc);
    } else {
      pack_along(g.b + p0 * g.n + j0 + q, g.n, cols, kc, nr, out + q * kc);
    }
  }
}

// The fraction of a tile grid's work that is real for `x` rows or columns in tiles of `t`.
double tile_use(size_t x, size_t t) { return double(x) / double((x + t - 1) / t * t); }

// C (ldc = g.n), or with `transpose_c` Cᵀ: tile (i, j) of this product lands at C[j][i] (ldc = g.m), which
// is how a product narrower than a micro-tile runs as its transpose (Cᵀ = op(B)ᵀ·op(A)ᵀ) on whole tiles.
void blocked(const GemmArgs& g, const Blocking& bl, bool transpose_c) {
  const size_t mr = bl.micro.mr, nr = bl.micro.nr;
  const size_t kc_max = std::min(kKc, g.k);
  const size_t nc_max = std::min(kNc, (g.n + nr - 1) / nr * nr);
  const size_t mc_max = std::min(bl.mc, (g.m + mr - 1) / mr * mr);
  float* bpack = packed_b.get(kc_max * nc_max);
  float* apack = packed_a.get(kc_max * mc_max);
  alignas(64) float edge[32 * 32];  // MR×NR of the widest kernel
  for (size_t j0 = 0; j0 < g.n; j0 += kNc) {
    const size_t nc = std::min(kNc, g.n - j0);
    for (size_t p0 = 0; p0 < g.k; p0 += kKc) {
      const size_t kc = std::min(kKc, g.k - p0);
      const bool add = g.accumulate || p0 > 0;
      pack_b(g, p0, kc, j0, nc, nr, bpack);
      for (size_t i0 = 0; i0 < g.m; i0 += bl.mc) {
        const size_t mc = std::min(bl.mc, g.m - i0);
        pack_a(g, i0, mc, p0, kc, mr, apack);
        for (size_t jr = 0; jr < nc; jr += nr) {
          const size_t cols = std::min(nr, nc - jr);
          const float* bp = bpack + jr * kc;
          for (size_t ir = 0; ir < mc; ir += mr) {
            const size_t rows = std::min(mr, mc - ir);
            const float* ap = apack + ir * kc;
            const size_t i = i0 + ir, j = j0 + jr;
            if (!transpose_c && rows == mr && cols == nr) {
              bl.micro.fn(kc, ap, bp, g.c + i * g.n + j, g.n, add);
              continue;
            }
            bl.micro.fn(kc, ap, bp, edge, nr, false);
            for (size_t r = 0; r < rows; ++r) {
              for (size_t q = 0; q < cols; ++q) {
                float& out = transpose_c ? g.c[(j + q) * g.m + i + r] : g.c[(i + r) * g.n + j + q];
                out = add ? out + edge[r * nr + q] : edge[r * nr + q];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

void gemm(const GemmArgs& g, SimdLevel simd) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {
    if (!g.accumulate) std::memset(g.c, 0, g.m * g.n * sizeof(float));
    return;
  }
  const Blocking bl = blocking(simd);
  const size_t mr = bl.micro.mr, nr = bl.micro.nr;
  // A narrow C (a classifier head's few columns) wastes most of each NR-wide tile; its transpose does not.
  if (tile_use(g.m, nr) * tile_use(g.n, mr) > 1.25 * tile_use(g.m, mr) * tile_use(g.n, nr)) {
    GemmArgs t = g;
    t.a = g.b;
    t.b = g.a;
    t.m = g.n;
    t.n = g.m;
    t.trans_a = !g.trans_b;
    t.trans_b = !g.trans_a;
    return blocked(t, bl, true);
  }
  blocked(g, bl, false);
}

}  // namespace layers
}  // namespace dtrain
