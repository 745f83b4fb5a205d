// The layer kernels on the GPU: fused bias + activation (forward, backward with the bias gradient) and
// softmax cross-entropy, with the per-element math of addon/src/layers/act_math.h, the code the CPU kernels
// run, so the CPU tests cover the formulas. Deterministic: no atomics, fixed reduction trees.
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "dtrain_cuda.h"
#include "errors.h"
#include "layers/act_math.h"

using dtrain::SetError;
namespace lm = dtrain::layers::math;
using dtrain::layers::Act;

namespace {
int GridFor(size_t n) {
  size_t blocks = (n + 255) / 256;
  return (int)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

template <Act A>
__global__ void BiasActForward(float* __restrict__ z, const float* __restrict__ bias, float* y, size_t rows,
                               size_t cols) {
  const size_t n = rows * cols;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float v = z[i];
    if (bias) {
      v += bias[i % cols];
      z[i] = v;
    }
    y[i] = lm::activate<A>(v);
  }
}

template <Act A>
__global__ void BiasActBackward(const float* dy, const float* __restrict__ z, float* dz, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dz[i] = dy[i] * lm::derivative<A>(z[i]);
}

// Column sums of dz: a 32×8 block per 32 columns; each thread sums a stripe of rows in double (as the CPU
// kernel carries its sums), then the 8 stripes are added in a fixed order.
constexpr int kColTile = 32, kRowStripes = 8;
__global__ void ColumnSums(const float* __restrict__ dz, float* __restrict__ dbias, size_t rows, size_t cols,
                           bool accumulate) {
  __shared__ double partial[kRowStripes][kColTile];
  const size_t c = blockIdx.x * (size_t)kColTile + threadIdx.x;
  double s = 0;
  if (c < cols)
    for (size_t r = threadIdx.y; r < rows; r += kRowStripes) s += dz[r * cols + c];
  partial[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double total = 0;
    for (int k = 0; k < kRowStripes; ++k) total += partial[k][threadIdx.x];
    dbias[c] = (float)(accumulate ? dbias[c] + total : total);
  }
}

// Block-wide reductions over 256 threads, in a fixed tree.
constexpr int kXentThreads = 256;
template <bool Max>
__device__ float BlockReduce(float v, float* shared) {
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = Max ? lm::greater(v, o) : v + o;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kXentThreads / 32 ? shared[lane] : (Max ? -INFINITY : 0.0f);
    for (int off = 16; off > 0; off >>= 1) {
      const float o = __shfl_xor_sync(0xffffffffu, v, off);
      v = Max ? lm::greater(v, o) : v + o;
    }
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  v = shared[0];
  __syncthreads();
  return v;
}

// One block per row: loss[row] = log Σ e^(x - max) + max - x[label]; grad = e^(x - max) · scale / Σ, minus
// scale at the label. A bad label marks `bad` (the first bad row wins) and leaves the row's grad alone.
__global__ void SoftmaxXent(const float* __restrict__ logits, const int32_t* __restrict__ labels, size_t classes,
                            float scale, float* __restrict__ grad, double* __restrict__ loss, unsigned long long* bad) {
  __shared__ float shared[kXentThreads / 32];
  const size_t row = blockIdx.x;
  const float* x = logits + row * classes;
  const int32_t label = labels[row];
  if (label < 0 || (size_t)label >= classes) {
    if (threadIdx.x == 0) atomicMin(bad, (unsigned long long)row);
    return;
  }
  float max = -INFINITY;
  for (size_t c = threadIdx.x; c < classes; c += blockDim.x) max = lm::greater(max, x[c]);
  max = BlockReduce<true>(max, shared);
  float sum = 0;
  for (size_t c = threadIdx.x; c < classes; c += blockDim.x) sum += lm::fast_exp(x[c] - max);
  sum = BlockReduce<false>(sum, shared);
  if (threadIdx.x == 0) loss[row] = log((double)sum) + max - x[label];
  if (grad) {
    float* g = grad + row * classes;
    const float k = scale / sum;
    for (size_t c = threadIdx.x; c < classes; c += blockDim.x)
      g[c] = lm::fast_exp(x[c] - max) * k - (c == (size_t)label ? scale : 0.0f);
  }
}

// The mean of the per-row losses, summed in a fixed order by one block.
__global__ void MeanLoss(const double* __restrict__ loss, size_t rows, double* out) {
  __shared__ double partial[kXentThreads];
  double s = 0;
  for (size_t r = threadIdx.x; r < rows; r += blockDim.x) s += loss[r];
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int half = kXentThreads / 2; half > 0; half >>= 1) {
    if ((int)threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = rows ? partial[0] / (double)rows : 0.0;
}

// Grow-only scratch for the per-row losses and the results, per device (allocated on first use).
struct Scratch {
  int device = -1;
  void* ptr = nullptr;
  size_t bytes = 0;
};
std::mutex g_scratch_mu;
Scratch g_scratch[64];

int ScratchFor(size_t bytes, void** out) {
  int dev = 0;
  DTRAIN_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return SetError(DTRAIN_CUDA_EARG, "device index out of range");
  std::lock_guard<std::mutex> lock(g_scratch_mu);
  Scratch& s = g_scratch[dev];
  if (s.bytes < bytes) {
    if (s.ptr) DTRAIN_CUDA_CHECK(cudaFree(s.ptr));
    s.ptr = nullptr;
    s.bytes = 0;
    DTRAIN_CUDA_CHECK(cudaMalloc(&s.ptr, bytes));
    s.bytes = bytes;
  }
  *out = s.ptr;
  return 0;
}

bool ValidAct(int act) { return act == DTRAIN_ACT_NONE || act == DTRAIN_ACT_RELU || act == DTRAIN_ACT_GELU; }
}  // namespace

extern "C" {
int dtrain_cuda_bias_act(float* z, const float* bias, float* y, size_t rows, size_t cols, int act) {
  if (!ValidAct(act)) return SetError(DTRAIN_CUDA_EARG, "bias_act: act must be 0 (none), 1 (relu) or 2 (gelu)");
  const size_t n = rows * cols;
  if (n == 0) return 0;
  if (!z) return SetError(DTRAIN_CUDA_EARG, "bias_act: z is null");
  if (!y) y = z;
  if (act == DTRAIN_ACT_RELU)
    BiasActForward<Act::relu><<<GridFor(n), 256>>>(z, bias, y, rows, cols);
  else if (act == DTRAIN_ACT_GELU)
    BiasActForward<Act::gelu><<<GridFor(n), 256>>>(z, bias, y, rows, cols);
  else
    BiasActForward<Act::none><<<GridFor(n), 256>>>(z, bias, y, rows, cols);
  DTRAIN_CUDA_CHECK(cudaGetLastError());
  return 0;
}

int dtrain_cuda_bias_act_backward(const float* dy, const float* z, float* dz, float* dbias, size_t rows, size_t cols,
                                  int act, int accumulate) {
  if (!ValidAct(act))
    return SetError(DTRAIN_CUDA_EARG, "bias_act_backward: act must be 0 (none), 1 (relu) or 2 (gelu)");
  const size_t n = rows * cols;
  if (n && (!dy || !z)) return SetError(DTRAIN_CUDA_EARG, "bias_act_backward: dy and z are required");
  if (!dz) dz = const_cast<float*>(dy);
  if (n) {
    if (act == DTRAIN_ACT_RELU)
      BiasActBackward<Act::relu><<<GridFor(n), 256>>>(dy, z, dz, n);
    else if (act == DTRAIN_ACT_GELU)
      BiasActBackward<Act::gelu><<<GridFor(n), 256>>>(dy, z, dz, n);
    else if (dz != dy)
      DTRAIN_CUDA_CHECK(cudaMemcpyAsync(dz, dy, n * sizeof(float), cudaMemcpyDeviceToDevice, 0));
  }
  if (dbias && cols) {
    const unsigned blocks = (unsigned)((cols + kColTile - 1) / kColTile);
    ColumnSums<<<blocks, dim3(kColTile, kRowStripes)>>>(dz, dbias, rows, cols, accumulate != 0);
  }
  DTRAIN_CUDA_CHECK(cudaGetLastError());
  return 0;
}

int dtrain_cuda_softmax_xent(const float* logits, const int32_t* labels, size_t rows, size_t classes, double scale,
                             float* grad, double* loss) {
  if (!loss) return SetError(DTRAIN_CUDA_EARG, "softmax_xent: loss is null");
  if (classes == 0) return SetError(DTRAIN_CUDA_EARG, "softmax_xent: classes must be at least 1");
  *loss = 0;
  if (rows == 0) return 0;
  if (!logits || !labels) return SetError(DTRAIN_CUDA_EARG, "softmax_xent: logits and labels are required");
  if (rows > 0x7fffffffu) return SetError(DTRAIN_CUDA_EARG, "softmax_xent: more than 2^31 - 1 rows");
  // Layout: rows doubles of per-row loss, the mean, then the first bad row (all ones when none).
  void* base = nullptr;
  if (int e = ScratchFor((rows + 1) * sizeof(double) + sizeof(unsigned long long), &base)) return e;
  double* row_loss = static_cast<double*>(base);
  double* mean = row_loss + rows;
  auto* bad = reinterpret_cast<unsigned long long*>(mean + 1);
  DTRAIN_CUDA_CHECK(cudaMemsetAsync(bad, 0xff, sizeof *bad, 0));
  SoftmaxXent<<<(unsigned)rows, kXentThreads>>>(logits, labels, classes, (float)scale, grad, row_loss, bad);
  MeanLoss<<<1, kXentThreads>>>(row_loss, rows, mean);
  DTRAIN_CUDA_CHECK(cudaGetLastError());
  struct {
    double mean;
    unsigned long long bad;
  } host;
  DTRAIN_CUDA_CHECK(cudaMemcpy(&host, mean, sizeof host, cudaMemcpyDeviceToHost));
  if (host.bad != ~0ull) {
    int32_t label = 0;
    DTRAIN_CUDA_CHECK(cudaMemcpy(&label, labels + host.bad, sizeof label, cudaMemcpyDeviceToHost));
    return SetError(DTRAIN_CUDA_EARG, "labels[" + std::to_string(host.bad) + "] = " + std::to_string(label) +
                                          " is not a class in [0, " + std::to_string(classes) + ")");
  }
  *loss = host.mean;
  return 0;
}
}  // extern "C"
