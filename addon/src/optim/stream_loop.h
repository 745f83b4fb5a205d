// The memory-bandwidth reference of the optimizer benchmark: reads p, g, m, v and writes p, m, v
// (28 bytes per element), compiled with the addon's flags like the AdamW kernel it is compared with.
#pragma once

#include <cstddef>

namespace dtrain {
void stream_loop(float* p, const float* g, float* m, float* v, size_t n);
}  // namespace dtrain
