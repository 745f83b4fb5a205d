// Fused AdamW on the GPU: one pass per element (read p, g, m, v; write p, m, v), with the per-element math
// of addon/src/optim/adamw_math.h, the same code the CPU kernels run, so the CPU tests cover the formula;
// the bf16/fp16 rounding is addon/src/half.h, as on the CPU.
// fp32 params are updated in place; bf16/fp16 params are the rounded image of an fp32 master copy.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "dtrain_cuda.h"
#include "errors.h"
#include "half.h"
#include "optim/adamw_math.h"

using dtrain::SetError;
namespace aw = dtrain::adamw;

namespace {
// float4 path: the bandwidth-bound update moves 28 bytes per parameter, so wide loads matter.
__global__ void AdamWF32Vec4(float4* __restrict__ p, const float4* __restrict__ g, float4* __restrict__ m,
                             float4* __restrict__ v, size_t n4, aw::StepConsts k) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
    float4 P = p[i], G = g[i], M = m[i], V = v[i];
    aw::update(P.x, G.x, M.x, V.x, k);
    aw::update(P.y, G.y, M.y, V.y, k);
    aw::update(P.z, G.z, M.z, V.z, k);
    aw::update(P.w, G.w, M.w, V.w, k);
    p[i] = P;
    m[i] = M;
    v[i] = V;
  }
}

__global__ void AdamWF32(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                         float* __restrict__ v, size_t begin, size_t n, aw::StepConsts k) {
  for (size_t i = begin + blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float P = p[i], M = m[i], V = v[i];
    aw::update(P, g[i], M, V, k);
    p[i] = P;
    m[i] = M;
    v[i] = V;
  }
}

template <bool Bf16>
__global__ void AdamWHalfMaster(uint16_t* __restrict__ p, float* __restrict__ master, const float* __restrict__ g,
                                float* __restrict__ m, float* __restrict__ v, size_t n, aw::StepConsts k) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float P = master[i], M = m[i], V = v[i];
    aw::update(P, g[i], M, V, k);
    master[i] = P;
    m[i] = M;
    v[i] = V;
    p[i] = Bf16 ? dtrain::f32ToBf16(P) : dtrain::f32ToF16(P);
  }
}

int Blocks(size_t work) {
  static int sms = 0;
  if (!sms) {
    int dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (sms <= 0) sms = 80;
  }
  size_t want = (work + 255) / 256;
  size_t cap = (size_t)sms * 8;  // enough resident blocks to saturate HBM; the loops stride the rest
  return (int)(want < cap ? (want ? want : 1) : cap);
}

bool Aligned16(const void* a) { return ((uintptr_t)a & 15) == 0; }

int Launch(void* params, int dtype, float* master, const float* grads, float* m, float* v, size_t n,
           const dtrain_adamw_hparams* hp) {
  if (!hp || !params || !grads || !m || !v) return SetError(DTRAIN_CUDA_EARG, "adamw: null argument");
  if (hp->step < 1) return SetError(DTRAIN_CUDA_EARG, "adamw: step must be >= 1");
  aw::Hyper h{hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay};
  aw::StepConsts k = aw::make_step_consts(h, hp->step, hp->grad_scale);
  if (dtype == DTRAIN_F32) {
    float* p = static_cast<float*>(params);
    size_t n4 = (Aligned16(p) && Aligned16(grads) && Aligned16(m) && Aligned16(v)) ? n / 4 : 0;
    if (n4) AdamWF32Vec4<<<Blocks(n4), 256>>>((float4*)p, (const float4*)grads, (float4*)m, (float4*)v, n4, k);
    if (n4 * 4 < n) AdamWF32<<<Blocks(n - n4 * 4), 256>>>(p, grads, m, v, n4 * 4, n, k);
  } else if (dtype == DTRAIN_BF16 || dtype == DTRAIN_F16) {
    if (!master) return SetError(DTRAIN_CUDA_EARG, "adamw: bf16/fp16 params need an fp32 master copy");
    if (dtype == DTRAIN_BF16)
      AdamWHalfMaster<true><<<Blocks(n), 256>>>((uint16_t*)params, master, grads, m, v, n, k);
    else
      AdamWHalfMaster<false><<<Blocks(n), 256>>>((uint16_t*)params, master, grads, m, v, n, k);
  } else {
    return SetError(DTRAIN_CUDA_EARG, "adamw: params must be fp32, bf16 or fp16");
  }
  DTRAIN_CUDA_CHECK(cudaGetLastError());
  return 0;
}
}  // namespace

extern "C" {
int dtrain_cuda_adamw_step(void* params, int params_dtype, float* master, const float* grads, float* m, float* v,
                           size_t n, const dtrain_adamw_hparams* hp) {
  if (int e = Launch(params, params_dtype, master, grads, m, v, n, hp)) return e;
  DTRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  return 0;
}

int dtrain_cuda_time_adamw(void* params, int params_dtype, float* master, const float* grads, float* m, float* v,
                           size_t n, const dtrain_adamw_hparams* hp, int iters, float* ms) {
  if (!ms || iters <= 0) return SetError(DTRAIN_CUDA_EARG, "bad timing arguments");
  if (int e = Launch(params, params_dtype, master, grads, m, v, n, hp)) return e;  // warm-up
  cudaEvent_t a, b;
  DTRAIN_CUDA_CHECK(cudaEventCreate(&a));
  DTRAIN_CUDA_CHECK(cudaEventCreate(&b));
  DTRAIN_CUDA_CHECK(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i)
    if (int e = Launch(params, params_dtype, master, grads, m, v, n, hp)) return e;
  DTRAIN_CUDA_CHECK(cudaEventRecord(b));
  DTRAIN_CUDA_CHECK(cudaEventSynchronize(b));
  DTRAIN_CUDA_CHECK(cudaEventElapsedTime(ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 0;
}
}  // extern "C"
