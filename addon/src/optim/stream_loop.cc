#include "optim/stream_loop.h"

namespace dtrain {

void stream_loop(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float gi = g[i];
    m[i] = m[i] + gi;
    v[i] = v[i] + gi;
    p[i] = p[i] + gi;
  }
}

}  // namespace dtrain
