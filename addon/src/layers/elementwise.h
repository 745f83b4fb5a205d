// The layers' element-wise kernels: fused bias + activation (forward and backward) and softmax cross-entropy,
// each built for every SimdLevel (the compiler vectorises one body per target; GELU's AVX2 rows are intrinsics).
// Row-major rows × cols.
#pragma once
#include <cstddef>
#include <cstdint>

#include "layers/act_math.h"
#include "simd/level.h"

namespace dtrain {
namespace layers {

// z += bias (per column, when bias is not null), then y = act(z). y may be z (the pre-activation is then lost).
void bias_act_forward(float* z, const float* bias, float* y, size_t rows, size_t cols, Act act, SimdLevel simd);
// dz = dy ⊙ act'(z); dbias = (or += with accumulate) the column sums of dz. dz may be dy. For ReLU, z may be
// the forward's output (the same sign). dbias may be null.
void bias_act_backward(const float* dy, const float* z, float* dz, float* dbias, size_t rows, size_t cols, Act act,
                       bool accumulate, SimdLevel simd);
// Returns the mean over rows of -log softmax(logits)[label]; grad (when not null) = (softmax - onehot) × scale,
// so scale = 1 / rows gives the gradient of the mean. Labels must lie in [0, classes).
double softmax_xent(const float* logits, const int32_t* labels, size_t rows, size_t classes, double scale, float* grad,
                    SimdLevel simd);

}  // namespace layers
}  // namespace dtrain
