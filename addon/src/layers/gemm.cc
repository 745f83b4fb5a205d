#include "layers/gemm.h"

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

// Rows [i0, i0+mc) × depth [p0, p0+kc) of op(A) into panels of `mr` rows: panel q holds kc groups of mr
// (row-contiguous per depth step), rows past the edge zero.
void pack_a(const GemmArgs& g, size_t i0, size_t mc, size_t p0, size_t kc, size_t mr, float* out) {
  for (size_t q = 0; q < mc; q += mr) {
    const size_t rows = std::min(mr, mc - q);
    float* panel = out + q * kc;
    if (g.trans_a) {  // A is k×m: a depth step is a contiguous run of rows
      for (size_t p = 0; p < kc; ++p) {
        const float* src = g.a + (p0 + p) * g.m + i0 + q;
        float* dst = panel + p * mr;
        for (size_t r = 0; r < rows; ++r) dst[r] = src[r];
        for (size_t r = rows; r < mr; ++r) dst[r] = 0;
      }
    } else {
      for (size_t r = 0; r < rows; ++r) {
        const float* src = g.a + (i0 + q + r) * g.k + p0;
        for (size_t p = 0; p < kc; ++p) panel[p * mr + r] = src[p];
      }
      for (size_t r = rows; r < mr; ++r) {
        for (size_t p = 0; p < kc; ++p) panel[p * mr + r] = 0;
      }
    }
  }
}

// Depth [p0, p0+kc) × columns [j0, j0+nc) of op(B) into panels of `nr` columns, columns past the edge zero.
void pack_b(const GemmArgs& g, size_t p0, size_t kc, size_t j0, size_t nc, size_t nr, float* out) {
  for (size_t q = 0; q < nc; q += nr) {
    const size_t cols = std::min(nr, nc - q);
    float* panel = out + q * kc;
    if (g.trans_b) {  // B is n×k: a column is a contiguous run of depth
      for (size_t j = 0; j < cols; ++j) {
        const float* src = g.b + (j0 + q + j) * g.k + p0;
        for (size_t p = 0; p < kc; ++p) panel[p * nr + j] = src[p];
      }
      for (size_t j = cols; j < nr; ++j) {
        for (size_t p = 0; p < kc; ++p) panel[p * nr + j] = 0;
      }
    } else {
      for (size_t p = 0; p < kc; ++p) {
        const float* src = g.b + (p0 + p) * g.n + j0 + q;
        float* dst = panel + p * nr;
        std::memcpy(dst, src, cols * sizeof(float));
        for (size_t j = cols; j < nr; ++j) dst[j] = 0;
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
            float* c = g.c + (i0 + ir) * g.n + j0 + jr;
            if (rows == mr && cols == nr) {
              bl.micro.fn(kc, ap, bp, c, g.n, add);
              continue;
            }
            bl.micro.fn(kc, ap, bp, edge, nr, false);
            for (size_t r = 0; r < rows; ++r) {
              for (size_t j = 0; j < cols; ++j)
                c[r * g.n + j] = add ? c[r * g.n + j] + edge[r * nr + j] : edge[r * nr + j];
            }
          }
        }
      }
    }
  }
}

}  // namespace layers
}  // namespace dtrain
